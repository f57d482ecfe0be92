package resync

import (
	"net/http"

	"github.com/event-mesh-broadcaster/broadcaster/config/option"
	"github.com/event-mesh-broadcaster/broadcaster/mesh"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the endpoints' own: requests by endpoint and status, watch streams open, and
// why streams ended.
type metrics struct {
	requests *prometheus.CounterVec
	ends     *prometheus.CounterVec
}

// WithMetrics registers the endpoints' metrics with reg: broadcaster_http_requests_total
// {endpoint, code}, broadcaster_watchers and broadcaster_watch_ends_total{event} (the final
// event a stream ended with: cutoff, access, shutdown).
func WithMetrics(reg prometheus.Registerer) Option {
	return func(o *options) (err error) { o.metrics, err = option.Required("metrics registerer", reg); return err }
}

// endpoints names the paths requests are counted by; any other path counts as "other".
var endpoints = map[string]string{
	mesh.PathGetEventMesh: "getEventMesh", mesh.PathMesh: "mesh", mesh.PathDeltas: "deltas", mesh.PathWatch: "watch",
	"/healthz": "healthz", "/readyz": "readyz",
}

// instrument counts every request h answers, by endpoint and status.
func (h *Handler) instrument(next http.Handler) (http.Handler, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "broadcaster_http_requests_total",
			Help: "Requests to the endpoints, by endpoint and HTTP status."}, []string{"endpoint", "code"}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "broadcaster_watch_ends_total",
			Help: "GET /v1/watch streams the broadcaster ended, by their final event (cutoff: too slow or a reset; access: access changed; shutdown)."},
			[]string{"event"}),
	}
	collectors := []prometheus.Collector{m.requests, m.ends}
	if h.watchers != nil {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "broadcaster_watchers",
			Help: "GET /v1/watch streams open now."}, func() float64 { return float64(h.watchers.Len()) }))
	}
	for _, c := range collectors {
		if err := h.options.metrics.Register(c); err != nil {
			return nil, err
		}
	}
	h.ends = m.ends
	byEndpoint := map[string]http.Handler{}
	for _, name := range append(mapValues(endpoints), "other") {
		byEndpoint[name] = promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(prometheus.Labels{"endpoint": name}), next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := endpoints[r.URL.Path]
		if !ok {
			name = "other"
		}
		byEndpoint[name].ServeHTTP(w, r)
	}), nil
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
