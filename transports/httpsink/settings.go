package httpsink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/transports"
	"github.com/event-mesh-broadcaster/broadcaster/transports/tlsfiles"
)

// Settings are the sink's settings as users give them (under transports.http). The zero value
// sends nowhere; DefaultSettings also reads Knative's trust bundles and OIDC token where a
// SinkBinding mounts them.
type Settings struct {
	Sink        string // the target URL ($K_SINK); "" sends nowhere
	SinkRef     string // or a Kubernetes object whose address is followed (cluster mode)
	CEOverrides string // Knative's $K_CE_OVERRIDES (see WithOverrides)
	// CACerts are PEM CA certificates of the sink ($K_CA_CERTS, as a SinkBinding sets it).
	CACerts string
	// TrustBundles is a directory whose PEM files are all trusted, read again when they change.
	TrustBundles string
	// TokenFile holds the bearer token, read again when it changes. At its default, it is read
	// when present and no TokenRequest is made.
	TokenFile string
	// Audience, in cluster mode, asks a TokenRequest for a token for this audience
	// ($K_AUDIENCE); it wins over the sink reference's audience.
	Audience string
	// OIDCServiceAccount is the ServiceAccount the TokenRequest is for ($K_OIDC_SERVICE_ACCOUNT;
	// NAME in the broadcaster's namespace, or NAMESPACE/NAME); default the broadcaster's own.
	OIDCServiceAccount string
	TLS                tlsfiles.Client
}

// Where a SinkBinding subject finds Knative's trust bundles and its OIDC token.
const (
	DefaultTrustBundles = "/knative-custom-certs"
	DefaultTokenFile    = "/oidc/token"
)

// DefaultSettings sends nowhere, and reads Knative's trust bundles and OIDC token where a
// SinkBinding mounts them, when they are there.
func DefaultSettings() Settings {
	return Settings{TrustBundles: DefaultTrustBundles, TokenFile: DefaultTokenFile}
}

// Describe describes the settings, bound to s's fields.
func (s *Settings) Describe() []option.Setting {
	return append([]option.Setting{
		{Key: "transports.http.sink", Flag: "sink", FallbackEnv: "K_SINK", Placeholder: "url", Help: "send mesh-delta CloudEvents to this HTTP URL (default $K_SINK)",
			Field: &s.Sink},
		{Key: "transports.http.sinkRef", Flag: "sink-ref", Placeholder: "ref",
			Help:  "cluster mode: send to the address of this Kubernetes object, GROUP/Kind/NAMESPACE/NAME (e.g. eventing.knative.dev/Broker/shop/default; a core Service: /Service/shop/display), followed as it changes",
			Field: &s.SinkRef},
		{Key: "transports.http.ceOverrides", FallbackEnv: "K_CE_OVERRIDES", Placeholder: "json",
			Help:  "extensions set on every event sent to the sink, as Knative's K_CE_OVERRIDES: {\"extensions\": {...}}",
			Field: &s.CEOverrides},
		{Key: "transports.http.caCerts", FallbackEnv: "K_CA_CERTS", Placeholder: "pem",
			Help:  "also trust these PEM CA certificates for the sink (Knative's K_CA_CERTS)",
			Field: &s.CACerts},
		{Key: "transports.http.trustBundles", Placeholder: "dir",
			Help:  "also trust every PEM file under this directory for the sink (Knative's trust bundles), read again when they change; a missing default directory holds nothing",
			Field: &s.TrustBundles},
		{Key: "transports.http.tokenFile", Placeholder: "file",
			Help:  "present the bearer token in this file to the sink, read again when it changes; the default is used when present and no TokenRequest is made",
			Field: &s.TokenFile},
		{Key: "transports.http.audience", FallbackEnv: "K_AUDIENCE", Placeholder: "audience",
			Help:  "cluster mode: present a token for this audience from a TokenRequest (default the sink reference's audience)",
			Field: &s.Audience},
		{Key: "transports.http.oidcServiceAccount", FallbackEnv: "K_OIDC_SERVICE_ACCOUNT", Placeholder: "name",
			Help:  "cluster mode: the ServiceAccount the TokenRequest is for, NAME (in the broadcaster's namespace) or NAMESPACE/NAME (default the broadcaster's own)",
			Field: &s.OIDCServiceAccount},
	}, s.TLS.Describe("transports.http", "the sink")...)
}

// Check says whether Open would accept the settings, without sending; each problem names its
// setting.
func (s Settings) Check() error {
	var errs []error
	if s.Sink != "" {
		errs = append(errs, option.ForSetting("transports.http.sink", Check(s.Sink)))
	}
	if s.SinkRef != "" {
		_, err := ParseReference(s.SinkRef)
		errs = append(errs, option.ForSetting("transports.http.sinkRef", err))
		if s.Sink != "" {
			errs = append(errs, option.Incomplete("transports.http.sinkRef", "give transports.http.sink (--sink, $K_SINK) or sinkRef (--sink-ref), not both"))
		}
	}
	if s.CEOverrides != "" {
		errs = append(errs, option.ForSetting("transports.http.ceOverrides", option.Check(WithOverrides(s.CEOverrides))))
	}
	if s.CACerts != "" {
		errs = append(errs, option.ForSetting("transports.http.caCerts", option.Check(TrustPEM([]byte(s.CACerts)))))
	}
	if s.TrustBundles != "" && s.TrustBundles != DefaultTrustBundles {
		if info, err := os.Stat(s.TrustBundles); err != nil {
			errs = append(errs, option.ForSetting("transports.http.trustBundles", err))
		} else if !info.IsDir() {
			errs = append(errs, option.Invalid("transports.http.trustBundles", "not a directory"))
		}
	}
	if s.explicitTokenFile() {
		_, err := NewTokenFile(s.TokenFile, false, clock.RealClock{})
		errs = append(errs, option.ForSetting("transports.http.tokenFile", err))
	}
	if s.OIDCServiceAccount != "" {
		_, _, err := ParseServiceAccount(s.OIDCServiceAccount, "default")
		errs = append(errs, option.ForSetting("transports.http.oidcServiceAccount", err))
	}
	return errors.Join(append(errs, s.TLS.Check("transports.http"))...)
}

// explicitTokenFile: a token file other than the default, which must then be there.
func (s Settings) explicitTokenFile() bool {
	return s.TokenFile != "" && s.TokenFile != DefaultTokenFile
}

// Destination names the sink in logs and metrics ("http " and its URL without credentials, or
// the object it follows), or is "" when the settings name none.
func (s Settings) Destination() string {
	switch {
	case s.Sink != "":
		return "http " + option.RedactURL(s.Sink)
	case s.SinkRef != "":
		return "http " + s.SinkRef
	}
	return ""
}

// Open returns the sink the settings name (see New and NewFor): trusting the system's CAs,
// d.CA, caCerts, the CA file, the trust bundles and the address's CACerts; presenting the
// token of the token file or, in cluster mode with an audience, of a TokenRequest.
func (s Settings) Open(_ context.Context, d transports.Deps) (transports.Publisher, error) {
	tokenRequests := s.Audience != "" || s.OIDCServiceAccount != "" || s.SinkRef != ""
	if d.Kube == nil && !s.explicitTokenFile() && tokenRequests {
		for _, key := range []struct{ key, value string }{{"sinkRef", s.SinkRef}, {"audience", s.Audience}, {"oidcServiceAccount", s.OIDCServiceAccount}} {
			if key.value != "" {
				return nil, option.Invalid("transports.http."+key.key, "needs cluster mode (--kubeconfig)")
			}
		}
	}
	trust, err := NewTrust(TrustPEM(d.CA), TrustPEM([]byte(s.CACerts)), TrustFile(s.TLS.CAFile), TrustDirectory(s.TrustBundles),
		TrustLogger(d.Log))
	if err != nil {
		return nil, fmt.Errorf("sink TLS: %w", err)
	}
	var clientCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	if s.TLS.CertFile != "" {
		cert, err := tlsfiles.Load(s.TLS.CertFile, s.TLS.KeyFile, tlsfiles.WithLogger(d.Log))
		if err != nil {
			return nil, fmt.Errorf("sink TLS: %w", err)
		}
		clientCert = cert.GetClientCertificate
	}
	var tokens eitherTokens
	if s.TokenFile != "" {
		if tokens.file, err = NewTokenFile(s.TokenFile, !s.explicitTokenFile(), clock.RealClock{}); err != nil {
			return nil, option.ForSetting("transports.http.tokenFile", err)
		}
	}
	if d.Kube != nil && !s.explicitTokenFile() && tokenRequests {
		client, err := kubernetes.NewForConfig(d.Kube)
		if err != nil {
			return nil, err
		}
		if tokens.requests, err = NewTokenRequests(client, d.Namespace, s.OIDCServiceAccount, clock.RealClock{}); err != nil {
			return nil, option.ForSetting("transports.http.oidcServiceAccount", err)
		}
	}
	opts := []Option{WithOverrides(s.CEOverrides), WithLogger(d.Log), WithTrust(trust, clientCert), WithTokens(tokens)}
	if s.SinkRef == "" {
		if err := checkTarget(s.Sink); err != nil {
			return nil, err
		}
		return NewFor(staticAddress{Address{URL: s.Sink, Audience: s.Audience}}, d.Encoder, opts...)
	}
	ref, err := ParseReference(s.SinkRef)
	if err != nil {
		return nil, option.ForSetting("transports.http.sinkRef", err)
	}
	follower, err := Follow(d.Kube, ref, s.CACerts, s.Audience, d.Log)
	if err != nil {
		return nil, err
	}
	sink, err := NewFor(follower, d.Encoder, opts...)
	if err != nil {
		follower.Close()
		return nil, err
	}
	return &followingSink{Sink: sink, follower: follower}, nil
}

// followingSink is a sink and the follower of its reference, closed together.
type followingSink struct {
	*Sink
	follower *Follower
}

func (f *followingSink) Close(ctx context.Context) error {
	f.follower.Close()
	return f.Sink.Close(ctx)
}
