package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailbricks/mailbricks"
	"github.com/mailbricks/mailbricks/delivery"
	"github.com/mailbricks/mailbricks/lsm"
	"github.com/mailbricks/mailbricks/queue"
)

// metrics are the server's Prometheus metrics, served at /metrics. Counters
// are incremented where the work happens (SMTP sessions, delivery jobs,
// HTTP requests); gauges that describe stored state (queue depths, storage
// bytes, lsm engines) are read at scrape time.
type metrics struct {
	reg *prometheus.Registry

	smtpSessions *prometheus.CounterVec // port
	smtpActive   *prometheus.GaugeVec   // port
	smtpReplies  *prometheus.CounterVec // port, command, class
	smtpMessages *prometheus.CounterVec // port
	deliveries   *prometheus.CounterVec // topic, result
	jobAge       *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec // route, class
	httpDuration *prometheus.HistogramVec
	httpStreams  prometheus.Gauge
}

var (
	metricsMu  sync.Mutex
	metricsFor = map[*app]*metrics{}
)

// appMetrics returns a's metrics, made on first use.
func appMetrics(a *app) *metrics {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m := metricsFor[a]; m != nil {
		return m
	}
	m := newMetrics(a)
	metricsFor[a] = m
	return m
}

// queueTopics are the topics whose depths /metrics reports.
var queueTopics = []string{delivery.DefaultTopic, delivery.DefaultOutgoingTopic}

func newMetrics(a *app) *metrics {
	const ns = "mailbricks"
	m := &metrics{
		reg: prometheus.NewRegistry(),
		smtpSessions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smtp", Name: "sessions_total",
			Help: "SMTP sessions started, by port (smtp: mail from other servers, submission: from users)."}, []string{"port"}),
		smtpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smtp", Name: "sessions_active",
			Help: "SMTP sessions open now, by port."}, []string{"port"}),
		smtpReplies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smtp", Name: "replies_total",
			Help: "Replies to MAIL, RCPT, DATA and AUTH by port, command and code class (2xx, 4xx, 5xx)."}, []string{"port", "command", "class"}),
		smtpMessages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smtp", Name: "accepted_bytes_total",
			Help: "Bytes of message data accepted with 250, by port."}, []string{"port"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "delivery", Name: "jobs_total",
			Help: "Delivery jobs handled, by topic and result: delivered, deferred (failed, to be retried) or failed (last attempt: dead letter)."}, []string{"topic", "result"}),
		jobAge: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "queue", Name: "job_age_seconds",
			Help:    "Age of a job (since it was enqueued) when a worker finished handling it, by topic.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400}}, []string{"topic"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route pattern and status class."}, []string{"route", "class"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "http", Name: "request_duration_seconds",
			Help: "HTTP request durations by route pattern (event streams excluded).", Buckets: prometheus.DefBuckets}, []string{"route"}),
		httpStreams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: "http", Name: "event_streams_active",
			Help: "Open /api/events streams (HTTP sessions that receive live changes)."}),
	}
	m.reg.MustRegister(m.smtpSessions, m.smtpActive, m.smtpReplies, m.smtpMessages, m.deliveries, m.jobAge,
		m.httpRequests, m.httpDuration, m.httpStreams,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{a: a})
	return m
}

// metricsHandler serves a's metrics in the Prometheus text format.
func metricsHandler(a *app) http.Handler {
	m := appMetrics(a)
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// stateCollector reads, at scrape time, what the blocks hold: queue depths
// per topic and state, storage bytes per block (embedded stores: their
// directories), and the lsm engines' compactions, write stalls and sizes.
type stateCollector struct {
	a *app

	mu      sync.Mutex
	sizes   map[string]int64
	sizesAt time.Time
}

var (
	descQueueJobs = prometheus.NewDesc("mailbricks_queue_jobs", "Jobs on a queue topic by state (ready, leased, delayed, dead).", []string{"topic", "state"}, nil)
	descStorage   = prometheus.NewDesc("mailbricks_storage_bytes", "Bytes on disk of each embedded block's directory (blocks on servers are not measured).", []string{"block"}, nil)
	descLSMComp   = prometheus.NewDesc("mailbricks_lsm_compactions_total", "Compactions of an lsm engine since start, trivial moves included.", []string{"block"}, nil)
	descLSMStalls = prometheus.NewDesc("mailbricks_lsm_write_stalls_total", "Writes of an lsm engine that waited for a flush or a level-0 compaction.", []string{"block"}, nil)
	descLSMFlush  = prometheus.NewDesc("mailbricks_lsm_flushes_total", "Memtable flushes of an lsm engine since start.", []string{"block"}, nil)
	descLSMCompB  = prometheus.NewDesc("mailbricks_lsm_compaction_written_bytes_total", "Table bytes an lsm engine's compactions wrote since start.", []string{"block"}, nil)
	descLSMDisk   = prometheus.NewDesc("mailbricks_lsm_disk_bytes", "Live tables and logs of an lsm engine.", []string{"block"}, nil)
	descLSMMem    = prometheus.NewDesc("mailbricks_lsm_memtable_bytes", "Memtable bytes of an lsm engine.", []string{"block"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueueJobs, descStorage, descLSMComp, descLSMStalls, descLSMFlush, descLSMCompB, descLSMDisk, descLSMMem} {
		ch <- d
	}
}

// lsmEngine is implemented by backends on the lsm engine that expose it.
type lsmEngine interface{ DB() *lsm.DB }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a == nil || c.a.b == nil || c.a.cfg == nil {
		return
	}
	b := c.a.b
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if b.Queue != nil {
		for _, topic := range queueTopics {
			st, err := b.Queue.Stats(ctx, topic)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(descQueueJobs, err)
				continue
			}
			for state, n := range map[string]int64{"ready": st.Ready, "leased": st.Leased, "delayed": st.Delayed, "dead": st.Dead} {
				ch <- prometheus.MustNewConstMetric(descQueueJobs, prometheus.GaugeValue, float64(n), topic, state)
			}
		}
	}
	for block, n := range c.storageSizes() {
		ch <- prometheus.MustNewConstMetric(descStorage, prometheus.GaugeValue, float64(n), block)
	}
	engines := map[string]any{}
	if b.Index != nil {
		engines["index"] = b.Index.Backend()
	}
	if b.Mailbox != nil {
		engines["mailbox"] = b.Mailbox.Backend()
	}
	if b.Queue != nil {
		engines["queue"] = b.Queue.Backend()
	}
	for block, be := range engines {
		e, ok := be.(lsmEngine)
		if !ok || e.DB() == nil {
			continue
		}
		mt := e.DB().Metrics()
		ch <- prometheus.MustNewConstMetric(descLSMComp, prometheus.CounterValue, float64(mt.Compactions), block)
		ch <- prometheus.MustNewConstMetric(descLSMStalls, prometheus.CounterValue, float64(mt.WriteStalls), block)
		ch <- prometheus.MustNewConstMetric(descLSMFlush, prometheus.CounterValue, float64(mt.Flushes), block)
		ch <- prometheus.MustNewConstMetric(descLSMCompB, prometheus.CounterValue, float64(mt.CompactionBytesWritten), block)
		ch <- prometheus.MustNewConstMetric(descLSMDisk, prometheus.GaugeValue, float64(mt.DiskSize), block)
		ch <- prometheus.MustNewConstMetric(descLSMMem, prometheus.GaugeValue, float64(mt.MemTableSize), block)
	}
}

// storageSizes measures the embedded blocks' directories, at most every
// 10 seconds (a walk of a large blob store is not free).
func (c *stateCollector) storageSizes() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sizes != nil && time.Since(c.sizesAt) < 10*time.Second {
		return c.sizes
	}
	cfg := c.a.cfg
	blocks := map[string]bool{"blobs": cfg.S3URL == "", "reputation": cfg.RedisURL == "",
		"mailbox": cfg.PGURL == "", "index": cfg.PGURL == "", "queue": cfg.PGURL == "" && cfg.NATSURL == ""}
	out := map[string]int64{}
	for block, local := range blocks {
		if !local {
			continue
		}
		var n int64
		_ = filepath.WalkDir(filepath.Join(cfg.Data, block), func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // files vanish under compaction and GC
			}
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		out[block] = n
	}
	c.sizes, c.sizesAt = out, time.Now()
	return out
}

// instrumentSMTP counts srv's sessions and its replies to MAIL, RCPT, DATA
// and AUTH by code class. port names the listener ("smtp", "submission").
func instrumentSMTP(a *app, srv *smtp.Server, port string) {
	m := appMetrics(a)
	inner := srv.Backend
	srv.Backend = smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s, err := inner.NewSession(c)
		m.smtpSessions.WithLabelValues(port).Inc()
		if err != nil {
			m.smtpReplies.WithLabelValues(port, "connect", replyClass(err)).Inc()
			return s, err
		}
		m.smtpActive.WithLabelValues(port).Inc()
		cs := &countedSession{Session: s, m: m, port: port}
		if as, ok := s.(smtp.AuthSession); ok {
			return &countedAuthSession{countedSession: cs, auth: as}, nil
		}
		return cs, nil
	})
}

// replyClass is the code class of a session method's result as go-smtp
// answers it: nil is 2xx, an *smtp.SMTPError its code's class, anything
// else 4xx (go-smtp answers 451).
func replyClass(err error) string {
	if err == nil {
		return "2xx"
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 200 && se.Code < 600 {
		return strconv.Itoa(se.Code/100) + "xx"
	}
	return "4xx"
}

type countedSession struct {
	smtp.Session
	m      *metrics
	port   string
	closed bool
}

func (s *countedSession) Logout() error {
	if !s.closed {
		s.closed = true
		s.m.smtpActive.WithLabelValues(s.port).Dec()
	}
	return s.Session.Logout()
}

func (s *countedSession) Mail(from string, opts *smtp.MailOptions) error {
	err := s.Session.Mail(from, opts)
	s.m.smtpReplies.WithLabelValues(s.port, "mail", replyClass(err)).Inc()
	return err
}

func (s *countedSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	err := s.Session.Rcpt(to, opts)
	s.m.smtpReplies.WithLabelValues(s.port, "rcpt", replyClass(err)).Inc()
	return err
}

func (s *countedSession) Data(r io.Reader) error {
	cr := &countingReader{r: r}
	err := s.Session.Data(cr)
	s.m.smtpReplies.WithLabelValues(s.port, "data", replyClass(err)).Inc()
	if err == nil {
		s.m.smtpMessages.WithLabelValues(s.port).Add(float64(cr.n))
	}
	return err
}

type countedAuthSession struct {
	*countedSession
	auth smtp.AuthSession
}

func (s *countedAuthSession) AuthMechanisms() []string { return s.auth.AuthMechanisms() }

func (s *countedAuthSession) Auth(mech string) (sasl.Server, error) {
	srv, err := s.auth.Auth(mech)
	if err != nil {
		s.m.smtpReplies.WithLabelValues(s.port, "auth", replyClass(err)).Inc()
		return srv, err
	}
	return &countedSASL{Server: srv, s: s.countedSession}, nil
}

// countedSASL counts an AUTH exchange's outcome when it ends.
type countedSASL struct {
	sasl.Server
	s *countedSession
}

func (c *countedSASL) Next(resp []byte) ([]byte, bool, error) {
	ch, done, err := c.Server.Next(resp)
	if done || err != nil {
		class := "2xx"
		if err != nil {
			class = replyClass(err)
			if !errors.As(err, new(*smtp.SMTPError)) {
				class = "5xx" // go-smtp answers 454/535 to a failed exchange
			}
		}
		c.s.m.smtpReplies.WithLabelValues(c.s.port, "auth", class).Inc()
	}
	return ch, done, err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// countDeliveries wraps a queue handler to count its results and the age of
// the jobs it finishes.
func countDeliveries(a *app, topic string, h queue.Handler) queue.Handler {
	return &countedHandler{h: h, m: appMetrics(a), topic: topic}
}

type countedHandler struct {
	h     queue.Handler
	m     *metrics
	topic string
}

func (c *countedHandler) Handle(ctx context.Context, job queue.Job) error {
	err := c.h.Handle(ctx, job)
	result := "delivered"
	switch {
	case err == nil:
	case job.MaxAttempts > 0 && job.Attempt >= job.MaxAttempts && !mailbricks.IsTemporary(err):
		result = "failed"
	default:
		result = "deferred"
	}
	c.m.deliveries.WithLabelValues(c.topic, result).Inc()
	if err == nil && !job.EnqueuedAt.IsZero() {
		c.m.jobAge.WithLabelValues(c.topic).Observe(time.Since(job.EnqueuedAt).Seconds())
	}
	return err
}

// instrumentHTTP counts h's requests by route pattern and status class.
// /api/events streams are counted as they open and as open streams.
func instrumentHTTP(a *app, h http.Handler) http.Handler {
	m := appMetrics(a)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		stream := r.URL.Path == "/api/events"
		if stream {
			m.httpStreams.Inc()
			defer m.httpStreams.Dec()
		}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "other"
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(rec.status/100)+"xx").Inc()
		if !stream {
			m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush and SetWriteDeadline.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
