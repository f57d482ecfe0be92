package consumer

// MessageError is a broker's message a consumer could not use: not a mesh-delta event, or a
// change its handler refused. Source says where it came from: an MQTT topic, a NATS subject,
// or "KV <key>" for an entry of a NATS KV bucket. The broker subpackages (mqttconsumer,
// natsconsumer) report them and go on with the next message.
type MessageError struct {
	Source string
	Err    error
}

func (e *MessageError) Error() string { return e.Source + ": " + e.Err.Error() }

func (e *MessageError) Unwrap() error { return e.Err }
