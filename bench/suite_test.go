package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/brokertest"
	"github.com/natspipe/natspipe/internal/natstest"
	"github.com/natspipe/natspipe/internal/procs/procstest"
	"github.com/natspipe/natspipe/internal/varianttest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/fleet"
	"github.com/natspipe/natspipe/pipelines/natsconn"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
	"github.com/natspipe/natspipe/pipelines/transports"
	"github.com/natspipe/natspipe/pipelines/variants"
	"github.com/natspipe/natspipe/pipelines/worker"
)

func TestMain(m *testing.M) {
	worker.Dispatch() // the test binary doubles as P3/P4's worker processes
	RawHopMain()      // and as the hops of the raw cross-process chain
	benchkit.Exit(m)
}

// suiteInflight is P2's in-flight limit in the suite.
const suiteInflight = 64

// variant is one column of the suite: a registered variant
// (pipelines/variants) in its suite configuration, over one transport.
type variant struct {
	impl string
	v    variants.Variant
	cfg  variants.Config
}

// name is the variant's sub-benchmark name: its impl key, then its
// transport key, last, so that a -bench pattern for the impl lists the
// transports side by side: "impl=p4/transport=core".
func (v variant) name() string { return "impl=" + v.impl + "/transport=" + v.cfg.TransportName() }

// variantsOn are P0..P4 as the suite runs them over tr: P2 with inflight
// 64, P3 with sync workers, P4 with 1-4-1-1 sync workers (the registry's
// defaults). P3 and P4 start this test binary as their worker processes.
// P0 uses no broker; it is listed under every transport as the row's
// baseline.
func variantsOn(tb testing.TB, tr transport.Transport) []variant {
	launcher, err := fleet.Self()
	if err != nil {
		tb.Fatal(err)
	}
	var vs []variant
	for _, v := range variants.All() {
		cfg := variants.Config{Transport: tr, Inflight: suiteInflight, Mode: worker.Sync,
			Processes: fleet.Processes{Launcher: launcher}}
		vs = append(vs, variant{impl: v.Name, v: v, cfg: cfg})
	}
	return vs
}

// variantsOver are P0..P4 as variantsOn runs them, each over every
// transport of ts in turn: p0 over ts[0], p0 over ts[1], p1 over ts[0], ...
// With messaging only, P0 is left out.
func variantsOver(tb testing.TB, ts []transport.Transport, messaging bool) []variant {
	per := make([][]variant, len(ts))
	for i, tr := range ts {
		per[i] = variantsOn(tb, tr)
	}
	var vs []variant
	for j := range variants.All() {
		for i := range ts {
			if v := per[i][j]; v.v.Messaging || !messaging {
				vs = append(vs, v)
			}
		}
	}
	return vs
}

// selectedTransports are the transports of most benchmarks:
// transports.FromEnv's (core unless NATSPIPE_TRANSPORT says otherwise).
func selectedTransports(tb testing.TB) []transport.Transport {
	ts, err := transports.FromEnv(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// comparedTransports are the transports of a benchmark that compares them:
// transports.Compared's (every transport unless NATSPIPE_TRANSPORT says
// otherwise).
func comparedTransports(tb testing.TB) []transport.Transport {
	ts, err := transports.Compared(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

// variants are P0..P4 over the default transport.
func defaultVariants(tb testing.TB) []variant { return variantsOn(tb, nil) }

// fixture is a variant ready to run: its runner and where to send.
type fixture struct {
	runner *pipelines.Runner
	sender pipelines.Sender
}

// setup starts v on the server conn names, for cfg (its Variant, Spec, Bound filled here);
// everything stops in tb's Cleanup.
func setup(tb testing.TB, conn natsconn.Config, v variant, cfg pipelines.RunConfig) fixture {
	tb.Helper()
	v.cfg.Transport = brokertest.For(tb, v.cfg.Transport) // v.start uses it too
	vc := v.cfg
	v.v.Describe(&cfg, vc)
	vc.Spec = cfg.Spec
	if cfg.Bound == 0 {
		cfg.Bound = v.v.Bound(vc)
	}
	if cfg.Window == 0 {
		cfg.Window = v.v.Window(vc, cfg.Bound)
	}
	if !v.v.Messaging {
		r, err := pipelines.NewRunner(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		p, err := v.v.Start(context.Background(), vc, r)
		if err != nil {
			tb.Fatal(err)
		}
		return fixture{runner: r, sender: p.(pipelines.Sender)}
	}
	fx := varianttest.StartOn(tb, conn, vc.Transport, v.start(), cfg)
	return fixture{runner: fx.Runner, sender: fx.Endpoint}
}

// start is v's start as a varianttest.StartFunc.
func (v variant) start() varianttest.StartFunc {
	return func(ctx context.Context, conn natsconn.Config, subjects bus.Subjects, spec pipelines.Spec, sink pipelines.Sink) (benchkit.Closer, error) {
		c := v.cfg
		c.NATS, c.Subjects, c.Spec = conn, subjects, spec
		return v.v.Start(ctx, c, sink)
	}
}

// BenchmarkSuite is the study's table: every variant on the same pipeline,
// for sleep and cpu work, over transports.FromEnv's transports (core by
// default): BenchmarkSuite/work=sleep/impl=p4/transport=core. Compare with
// scripts/compare.sh suite FILE.
func BenchmarkSuite(b *testing.B) {
	srv := natstest.Start(b)
	base := benchkit.Spec(b, pipelines.DefaultSpec())
	for _, work := range []pipelines.WorkModel{pipelines.Sleep, pipelines.CPU} {
		for _, v := range variantsOver(b, selectedTransports(b), false) {
			spec := base
			spec.Work = work
			fx := benchkit.Once(func() fixture {
				return setup(b, srv.Conn, v, pipelines.RunConfig{Spec: spec,
					Window: benchkit.Int(b, pipelines.EnvWindow, 0), Timeout: benchkit.Timeout(b)})
			})
			b.Run("work="+string(work)+"/"+v.name(), func(b *testing.B) {
				brokertest.For(b, v.cfg.Transport) // skips, saying why, when its broker is not there
				f := fx()
				benchkit.Bench(b, f.runner, f.sender)
			})
		}
	}
}

// messagingRig is what the messaging benchmarks share: a server, the
// pipeline's spec with zero-duration stages, and a raw nats.go chain of
// as many hops on that server, closed at b's end.
func messagingRig(b *testing.B) (*natstest.Server, pipelines.Spec, *RawChain) {
	b.Helper()
	srv := natstest.Start(b)
	spec := overheadSpec(b)
	raw, err := NewRawChain(srv.Conn, overheadHops)
	if err != nil {
		b.Fatal(err)
	}
	benchkit.Cleanup(b, "raw chain", raw)
	return srv, spec, raw
}

// overheadSpec is the messaging benchmarks' pipeline: the spec's payload,
// zero-duration stages.
func overheadSpec(b *testing.B) pipelines.Spec {
	spec := benchkit.Spec(b, pipelines.DefaultSpec())
	spec.Durations = make([]time.Duration, overheadHops-1)
	spec.Slowdown = nil
	return spec
}

// overheadRawN is how many round trips the raw chain makes just before and
// just after each variant's run of b.N messages, outside the timed section:
// as many as the variant's, within [200, 400]. testing.B calls a
// sub-benchmark several times while it sizes b.N; a hop of the process
// chain costs about 0.2 ms, so a fixed 2000 cost 4 s a call.
func overheadRawN(n int) int { return min(max(n, 200), 400) }

// overheadHops is the number of NATS hops a message makes in a 4-stage
// pipeline: source to S1, S1 to S2, S2 to S3, S3 to S4, S4 to the sink.
const overheadHops = 5

// BenchmarkOverhead measures messaging cost: each messaging variant (P4 as
// 1-4-1-1, its queue groups) with zero-duration stages and one message in
// flight, against a raw nats.go chain of as many hops measured in the same
// run, just before and just after the variant (their mean), outside the
// timed section. It reports ns/hop and
// x-raw, the ratio of the variant's hop to the raw hop of the same shape:
// P1 and P2 against a chain in one process (impl=raw), P3 and P4 against a
// chain whose every hop is a process of its own (impl=raw-procs), since a
// hop into an idle process pays that process's wake-up. It runs over
// transports.Compared's transports (every transport by default: the price
// of durability per hop is its result), on the topologies NATSPIPE_TOPOLOGY
// names (benchkit.Topologies; single by default), the last key:
// BenchmarkOverhead/impl=p4/transport=js/topology=single. By default the
// other transports run only for P1 and P4, every variant with
// NATSPIPE_SWEEP=full or NATSPIPE_TRANSPORT set. See overheadCluster for
// topology=cluster3.
func BenchmarkOverhead(b *testing.B) {
	for _, topo := range benchkit.Topology(b) {
		switch topo {
		case benchkit.TopologySingle:
			srv, spec, raw := messagingRig(b)
			overhead(b, topo, spec, overheadNet{conn: srv.Conn, raw: raw})
		case benchkit.TopologyCluster3:
			overheadCluster(b)
		}
	}
}

// overheadNet is where BenchmarkOverhead's messages travel: the harness's
// connection (source, sink, raw chains' ends), the connection of the
// process of stage (or raw hop) i, and the one-process raw chain (nil
// when the topology has none).
type overheadNet struct {
	conn  natsconn.Config
	stage func(i int) natsconn.Config // nil: conn
	raw   *RawChain
}

// overheadCluster is BenchmarkOverhead's topology=cluster3: an embedded
// 3-node cluster, the harness on node 0 and the processes of stage i (P3's
// and P4's workers, the raw process chain's hop i) on node (i+1) mod 3, so
// every hop (source to S1, ..., S4 to the sink) crosses a route. Only the
// process variants run there (impl=raw-procs, p3, p4; P1 and P2 are one
// connection, which is on one node), and JetStream's stream has three
// replicas (js.Options.Replicas), as a cluster's run would.
func overheadCluster(b *testing.B) {
	c := natstest.StartCluster(b)
	spec := overheadSpec(b)
	overhead(b, benchkit.TopologyCluster3, spec, overheadNet{
		conn:  c.NodeConn(0),
		stage: func(i int) natsconn.Config { return c.NodeConn(i + 1) },
	})
}

// overhead runs BenchmarkOverhead's sub-benchmarks on one topology.
func overhead(b *testing.B, topo string, spec pipelines.Spec, net overheadNet) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	rawProcs, err := NewRawProcChain(net.conn, net.stage, overheadHops, procstest.NewGroup(b, nil), exe, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	benchkit.Cleanup(b, "raw process chain", rawProcs)
	payload := make([]byte, spec.PayloadSize)
	hop := func(tb testing.TB, c *RawChain, n int) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		per, err := c.RoundTrips(ctx, n, payload)
		if err != nil {
			tb.Fatal(err)
		}
		return per / overheadHops
	}
	key := "/topology=" + topo
	for _, r := range []struct {
		impl  string
		chain *RawChain
	}{{"raw", net.raw}, {"raw-procs", rawProcs}} {
		if r.chain == nil {
			continue
		}
		b.Run("impl="+r.impl+key, func(b *testing.B) {
			b.ResetTimer()
			per := hop(b, r.chain, b.N)
			b.StopTimer()
			b.ReportMetric(float64(per), "ns/hop")
			b.ReportMetric(1, "x-raw")
		})
	}
	// Unless NATSPIPE_TRANSPORT or NATSPIPE_SWEEP=full asks for more, the
	// transports other than the default are compared on P1 (one process)
	// and P4 (worker processes) only.
	all := benchkit.Full(b) || os.Getenv(transports.EnvTransport) != ""
	for _, v := range variantsOver(b, comparedTransports(b), true) {
		if !all && v.impl != "p1" && v.impl != "p4" && transports.OrDefault(v.cfg.Transport).Name() != transports.Default {
			continue
		}
		ref := net.raw
		if v.impl == "p3" || v.impl == "p4" {
			ref = rawProcs
		}
		if ref == nil {
			continue // a one-process variant, on a topology without its raw chain
		}
		if net.stage != nil {
			v = v.spread(net.stage)
		}
		fx := benchkit.Once(func() fixture {
			return setup(b, net.conn, v, pipelines.RunConfig{Spec: spec, Window: 1, Timeout: benchkit.Timeout(b)})
		})
		b.Run(v.name()+key, func(b *testing.B) {
			brokertest.For(b, v.cfg.Transport) // skips, saying why, when its broker is not there
			f := fx()
			before := hop(b, ref, overheadRawN(b.N)) // beside the variant, outside the timed section
			b.ResetTimer()
			res, err := f.runner.Run(context.Background(), f.sender, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			// The raw hop before and after the variant's run: on a shared
			// machine the load can change between the two.
			rawHop := (before + hop(b, ref, overheadRawN(b.N))) / 2
			perHop := res.Elapsed / time.Duration(b.N*overheadHops)
			b.ReportMetric(float64(perHop), "ns/hop")
			b.ReportMetric(float64(perHop)/float64(rawHop), "x-raw")
		})
	}
}

// spread places v's worker processes on a cluster: stage i's on the node
// stage(i) connects to; a JetStream run's stream gets three replicas.
func (v variant) spread(stage func(i int) natsconn.Config) variant {
	v.cfg.Processes.Env = func(id fleet.WorkerID) []string { return stage(id.Stage).Environ() }
	if t, ok := v.cfg.Transport.(js.Transport); ok {
		t.Replicas = natstest.ClusterSize
		v.cfg.Transport = t
	}
	return v
}
