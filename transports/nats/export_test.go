package nats

// ReceivedMessages is how many messages p's connection has read from the server, including
// those its subscriptions dropped: tests use it to know that a flood has arrived.
func ReceivedMessages(p *Publisher) uint64 { return p.nc.Stats().InMsgs }
