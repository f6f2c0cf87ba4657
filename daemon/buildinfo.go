package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callbackd/callbackd/internal/buildinfo"
)

// registerBuildInfo exports which build is running as callbackd_build_info, constant 1, so a
// dashboard can show the version per instance and an upgrade is visible in every graph.
func registerBuildInfo(reg prometheus.Registerer, b buildinfo.Info) {
	if b.Version == "" {
		b = buildinfo.Read("dev")
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "callbackd_build_info",
		Help:        "Always 1; the labels say which build of callbackd is running.",
		ConstLabels: prometheus.Labels{"version": b.Version, "goversion": b.GoVersion, "revision": b.Revision},
	})
	g.Set(1)
	reg.MustRegister(g)
}
