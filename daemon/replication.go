package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callbackd/callbackd/queue"
)

// replicationWatch tells the operator of every write that makes or keeps a promise which fewer
// replicas had within redis.wait_timeout than redis.wait_replicas asks for. The write stands on
// the primary; only a failover before a replica catches up would lose it, so it is a warning
// and a counter to alert on, not a refusal (a refused promise would be retried into the same
// primary, and the customer would get nothing better).
type replicationWatch struct {
	log    *zap.Logger
	writes *prometheus.CounterVec
}

func newReplicationWatch(reg prometheus.Registerer, log *zap.Logger) *replicationWatch {
	w := &replicationWatch{log: log, writes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callbackd_redis_unreplicated_writes_total",
		Help: "Writes of a promise (enqueue) or of a customer's connect (connected, adopted) that fewer replicas " +
			"acknowledged within redis.wait_timeout than redis.wait_replicas asks for: a failover before a replica " +
			"caught up would lose them.",
	}, []string{"write"})}
	for _, write := range []string{queue.WriteEnqueue, queue.WriteConnected, queue.WriteAdopted} {
		w.writes.WithLabelValues(write)
	}
	reg.MustRegister(w.writes)
	return w
}

func (w *replicationWatch) unreplicated(u queue.Unreplicated) {
	w.writes.WithLabelValues(u.Write).Inc()
	fields := []zap.Field{zap.String("write", u.Write), zap.String("queue", u.Queue), zap.String("promise", u.ID),
		zap.Int("replicas_acked", u.Acked), zap.Int("replicas_wanted", u.Wanted)}
	if u.Err != nil {
		fields = append(fields, zap.Error(u.Err))
	}
	w.log.Warn("write not yet on enough Redis replicas: it is on the primary, and a failover now would lose it", fields...)
}
