package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
)

// Client is a transport client's TLS files as users set them: CAs to trust beside the system's,
// and a client certificate and key (read again when they change). The zero value adds nothing.
type Client struct{ CAFile, CertFile, KeyFile string }

// Describe describes c's settings under prefix ("transports.mqtt"), for a client of who ("the
// MQTT broker").
func (c *Client) Describe(prefix, who string) []option.Setting {
	return []option.Setting{
		{Key: prefix + ".tls.caFile", Placeholder: "file", Help: "also trust the PEM CA certificates in this file for " + who, Field: &c.CAFile},
		{Key: prefix + ".tls.certFile", Placeholder: "file", Help: "present the PEM client certificate in this file to " + who + " (with keyFile; read again when it changes)",
			Field: &c.CertFile},
		{Key: prefix + ".tls.keyFile", Placeholder: "file", Help: "the PEM private key of certFile", Field: &c.KeyFile},
	}
}

// Check says whether the files load; each problem names its setting under prefix.
func (c Client) Check(prefix string) error {
	var errs []error
	if c.CAFile != "" {
		_, err := ReadCAFile(c.CAFile)
		errs = append(errs, option.ForSetting(prefix+".tls.caFile", err))
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
	case c.CertFile == "" || c.KeyFile == "":
		errs = append(errs, option.Invalid(prefix+".tls.certFile", "give both the certificate and the key (%s.tls.certFile and keyFile), or neither", prefix))
	default:
		_, err := Load(c.CertFile, c.KeyFile)
		errs = append(errs, option.ForSetting(prefix+".tls.certFile", err))
	}
	return errors.Join(errs...)
}

// Customised reports whether c, or the CAs every transport trusts (sharedCA, PEM), change
// anything from the system's defaults.
func (c Client) Customised(sharedCA []byte) bool { return c != (Client{}) || len(sharedCA) > 0 }

// Config is the client TLS configuration: the system's CAs, sharedCA's (PEM) and CAFile's, and
// the client certificate (read again when the files change).
func (c Client) Config(sharedCA []byte) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(sharedCA)
	extra, err := ReadCAFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.CAFile, err)
	}
	pool.AppendCertsFromPEM(extra)
	conf := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := Load(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		conf.GetClientCertificate = cert.GetClientCertificate
	}
	return conf, nil
}

// ReadCAFile reads PEM CA certificates ("": none); an error does not repeat the path.
func ReadCAFile(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) {
			return nil, pathErr.Err
		}
		return nil, err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(raw) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return raw, nil
}
