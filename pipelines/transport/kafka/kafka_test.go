package kafka_test

import (
	"context"
	"errors"
	"fmt"
	. "github.com/natspipe/natspipe/pipelines/transport/kafka"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/natspipe/natspipe/internal/benchkit"
	"github.com/natspipe/natspipe/internal/kafkatest"
	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/bus"
	"github.com/natspipe/natspipe/pipelines/transport"
)

func TestMain(m *testing.M) { benchkit.Exit(m) }

// wait bounds every wait of these tests; kfake rebalances within a few
// heartbeats.
const wait = 20 * time.Second

// quiet is how long a test watches for a delivery that must not come.
const quiet = 300 * time.Millisecond

// testOptions make rebalances quick (heartbeats every 100 ms; a session
// timeout Kafka's default group.min.session.timeout.ms allows, which is
// kfake's default too; a member's idle fetch ends after 100 ms, so it
// fetches a newly assigned partition soon) and commits frequent.
func testOptions() Options {
	return Options{
		OpenTimeout:       5 * time.Second,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  5 * time.Second,
		RevokeWait:        2 * time.Second,
		CommitInterval:    20 * time.Millisecond,
		FetchMaxWait:      100 * time.Millisecond,
		PublishTimeout:    10 * time.Second,
	}
}

// faults records a Conn's faults and redeliveries.
type faults struct {
	mu          sync.Mutex
	errs        []error
	redelivered map[string]int
}

func (f *faults) Fault(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, err)
}

func (f *faults) Redelivered(stage string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.redelivered == nil {
		f.redelivered = map[string]int{}
	}
	f.redelivered[stage]++
}

func (f *faults) count(stage string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redelivered[stage]
}

var _ pipelines.RedeliverySink = (*faults)(nil)

// rig is one test's cluster and run.
type rig struct {
	t     *testing.T
	tr    Transport
	run   transport.Run
	kind  string
	admin *Conn // set the run up, tears it down
}

// newRig starts a cluster (kafkatest) and sets up a run of len(conc)
// stages with concurrency conc, torn down when the test ends.
func newRig(t *testing.T, conc ...int) *rig {
	benchkit.CheckLeaks(t) // first: its check runs after every other cleanup
	brokers, kind := kafkatest.Brokers(t)
	r := &rig{t: t, kind: kind, tr: Transport{Brokers: brokers, Options: testOptions()},
		run: transport.Run{Subjects: bus.NewSubjects(), Stages: len(conc), Concurrency: conc}}
	r.admin, _ = r.open("admin")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.admin.Setup(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := r.admin.Teardown(ctx, r.run); err != nil {
			t.Errorf("teardown: %v", err)
		}
	})
	return r
}

// open opens a Conn named name, closed when the test ends, with its
// faults, which must stay empty.
func (r *rig) open(name string) (*Conn, *faults) {
	r.t.Helper()
	f := &faults{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := r.tr.Open(ctx, transport.Env{Name: name, Faults: f})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		if err := c.Close(); err != nil {
			r.t.Errorf("close %s: %v", name, err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, err := range f.errs {
			r.t.Errorf("fault on %s: %v", name, err)
		}
	})
	return c.(*Conn), f
}

// got is one delivery a test's handler received.
type got struct {
	data   string
	member int
	d      transport.Delivery
}

// collect is a handler that sends every delivery to ch, tagged member.
func collect(ch chan<- got, member int) transport.Handler {
	return func(d transport.Delivery) { ch <- got{data: string(d.Data), member: member, d: d} }
}

// consume joins member to stage's group on c.
func (r *rig) consume(c *Conn, stage, limit int, member string, h transport.Handler) *Member {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	k, err := c.Consume(ctx, r.run, stage, transport.ConsumeOptions{Member: member, Limit: limit, Shared: true}, h)
	if err != nil {
		r.t.Fatal(err)
	}
	return k.(*Member)
}

// publish publishes "m-<i>" with key "m-<i>" for each i to stage.
func (r *rig) publish(c *Conn, stage int, is ...int) {
	r.t.Helper()
	p, err := c.Publisher(r.run, stage)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, i := range is {
		m := fmt.Sprintf("m-%d", i)
		if err := p.Publish(ctx, transport.Outgoing{Data: []byte(m), Key: m}); err != nil {
			r.t.Fatal(err)
		}
	}
}

func seq(from, to int) []int {
	var is []int
	for i := from; i < to; i++ {
		is = append(is, i)
	}
	return is
}

// recv takes the next delivery from ch, within wait.
func recv(t *testing.T, ch <-chan got) got {
	t.Helper()
	select {
	case g := <-ch:
		return g
	case <-time.After(wait):
		t.Fatalf("no delivery within %v", wait)
		return got{}
	}
}

// none checks that nothing arrives on ch for quiet.
func none(t *testing.T, ch <-chan got) {
	t.Helper()
	select {
	case g := <-ch:
		t.Fatalf("unexpected delivery %s (attempt %d)", g.data, g.d.Attempt)
	case <-time.After(quiet):
	}
}

func settle(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitAssigned waits until ok holds for the members' partitions; the
// members are all on c.
func waitAssigned(t *testing.T, c *Conn, ok func(parts [][]int32) bool, ks ...*Member) {
	t.Helper()
	deadline := time.After(wait)
	for {
		changed := c.AssignmentChanged()
		var parts [][]int32
		for _, k := range ks {
			parts = append(parts, k.AssignedPartitions())
		}
		if ok(parts) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("assignment %v still not as wanted after %v", parts, wait)
		}
	}
}

// eachOne: every member owns exactly one partition.
func eachOne(parts [][]int32) bool {
	for _, p := range parts {
		if len(p) != 1 {
			return false
		}
	}
	return true
}

// committed is the group's committed offset of partition 0 of stage's
// topic, and its metadata.
func (r *rig) committed(stage int) (int64, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	offs, err := r.admin.Admin().FetchOffsets(ctx, Group(r.run, stage))
	if err != nil {
		r.t.Fatal(err)
	}
	o, ok := offs.Lookup(Topic(r.run, stage), 0)
	if !ok {
		return -1, ""
	}
	return o.At, o.Metadata
}

// committedTotal is the sum of the group's committed offsets over the
// partitions of stage's topic.
func (r *rig) committedTotal(stage int) int64 {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	offs, err := r.admin.Admin().FetchOffsets(ctx, Group(r.run, stage))
	if err != nil {
		r.t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == Topic(r.run, stage) && o.At > 0 {
			total += o.At
		}
	})
	return total
}

// TestRoundTrip runs records through 4 stages and the sink, each stage
// forwarding then acknowledging: every record reaches the sink once,
// first time, and once drained every group has committed all it consumed.
func TestRoundTrip(t *testing.T) {
	const stages, n = 4, 40
	r := newRig(t, 2, 2, 2, 2)
	src, _ := r.open("source")
	var conns []*Conn
	for i := range stages {
		c, _ := r.open(pipelines.StageName(i))
		pub, err := c.Publisher(r.run, i+1)
		if err != nil {
			t.Fatal(err)
		}
		r.consume(c, i, 2, "w", func(d transport.Delivery) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := pub.Publish(ctx, transport.Outgoing{Data: d.Data, Key: string(d.Data)}); err != nil {
				t.Error(err)
				_ = d.Release()
				return
			}
			if err := d.Ack(); err != nil {
				t.Error(err)
			}
		})
		conns = append(conns, c)
	}
	sink, _ := r.open("sink")
	ch := make(chan got, n)
	r.consume(sink, r.run.Done(), 0, "sink", func(d transport.Delivery) {
		settle(t, d.Ack())
		ch <- got{data: string(d.Data), d: d}
	})
	sent := make(map[string]time.Time)
	var lat []time.Duration
	seen := map[string]bool{}
	for i := range n {
		m := fmt.Sprintf("m-%d", i)
		sent[m] = time.Now()
		r.publish(src, 0, i)
		g := recv(t, ch) // one at a time: the round trip of one record
		lat = append(lat, time.Since(sent[g.data]))
		if seen[g.data] || g.d.Attempt != 1 {
			t.Errorf("%s: again or attempt %d", g.data, g.d.Attempt)
		}
		seen[g.data] = true
	}
	none(t, ch)
	if len(seen) != n {
		t.Fatalf("sink got %d distinct records, want %d", len(seen), n)
	}
	// Draining commits what each stage finished: every group has
	// committed all n records (offsets start at 0 in every partition).
	for i, c := range conns {
		if err := c.Drain(); err != nil {
			t.Errorf("drain %s: %v", pipelines.StageName(i), err)
		}
		if total := r.committedTotal(i); total != n {
			t.Errorf("%s: committed %d records, want %d", pipelines.StageName(i), total, n)
		}
	}
	slices.Sort(lat)
	whose := "kfake's, not Kafka's"
	if r.kind == kafkatest.KindKafka {
		whose = "Kafka's, at " + strings.Join(r.tr.Brokers, ",")
	}
	t.Logf("round trip through %d stages and the sink, one record at a time (%s figures): p50 %v, max %v",
		stages, whose, lat[len(lat)/2], lat[len(lat)-1])
}

// TestPublishKeyAndMsgID: a record's key is the correlation ID (Key, or
// the envelope's when Key is empty) and MsgIDHeader is key.destination.
func TestPublishKeyAndMsgID(t *testing.T) {
	r := newRig(t, 1, 1)
	c, _ := r.open("p")
	p, err := c.Publisher(r.run, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := p.Publish(ctx, transport.Outgoing{Data: []byte("x"), Key: "abc"}); err != nil {
		t.Fatal(err)
	}
	env := pipelines.Envelope{ID: "env-id", Seq: 1}
	data, err := env.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, transport.Outgoing{Data: data}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.tr.Brokers...), kgo.ConsumeTopics(Topic(r.run, 1)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableClientMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var keys, ids []string
	for len(keys) < 2 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			keys = append(keys, string(rec.Key))
			for _, h := range rec.Headers {
				if h.Key == MsgIDHeader {
					ids = append(ids, string(h.Value))
				}
			}
		})
	}
	if want := []string{"abc", "env-id"}; !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q", keys, want)
	}
	if want := []string{"abc.S2", "env-id.S2"}; !slices.Equal(ids, want) {
		t.Errorf("%s %q, want %q", MsgIDHeader, ids, want)
	}
}

// TestLimitBoundsUnsettled: a member never holds more than its Limit
// unsettled; the rest waits (Pending) until one is settled.
func TestLimitBoundsUnsettled(t *testing.T) {
	const limit, n = 3, 10
	r := newRig(t, 1)
	c, _ := r.open("w")
	ch := make(chan got, n)
	k := r.consume(c, 0, limit, "w", collect(ch, 0))
	r.publish(c, 0, seq(0, n)...)
	var held []got
	for range limit {
		held = append(held, recv(t, ch))
	}
	none(t, ch)
	if u := k.Unsettled(); u != limit {
		t.Fatalf("unsettled %d, want %d", u, limit)
	}
	if p := k.Pending(); p == 0 || p > n-limit {
		t.Errorf("pending %d, want 1..%d", p, n-limit)
	}
	for i := limit; i < n; i++ {
		settle(t, held[0].d.Ack())
		held = append(held[1:], recv(t, ch))
		none0(t, ch)
		if u := k.Unsettled(); u > limit {
			t.Fatalf("unsettled %d > limit %d", u, limit)
		}
	}
	var data []string
	for _, g := range held {
		data = append(data, g.data)
		settle(t, g.d.Ack())
	}
	if want := []string{"m-7", "m-8", "m-9"}; !slices.Equal(data, want) {
		t.Errorf("last held %q, want %q (in order)", data, want)
	}
}

// none0 checks that nothing is waiting on ch now.
func none0(t *testing.T, ch <-chan got) {
	t.Helper()
	select {
	case g := <-ch:
		t.Fatalf("delivery %s past the limit", g.data)
	default:
	}
}

// TestMembersSharePartitions: a stage of concurrency 4 has 4 partitions;
// with 4 members, each gets one, every member gets records, and each
// record goes to exactly one member.
func TestMembersSharePartitions(t *testing.T) {
	const members, n = 4, 200
	r := newRig(t, members)
	if p := Partitions(r.run, 0); p != members {
		t.Fatalf("Partitions = %d, want %d", p, members)
	}
	c, _ := r.open("workers")
	ch := make(chan got, n)
	var ks []*Member
	for m := range members {
		ks = append(ks, r.consume(c, 0, 1, fmt.Sprint("w", m), func(d transport.Delivery) {
			settle(t, d.Ack())
			ch <- got{data: string(d.Data), member: m, d: d}
		}))
	}
	waitAssigned(t, c, eachOne, ks...)
	r.publish(c, 0, seq(0, n)...)
	by := make(map[string]int)
	per := make([]int, members)
	for range n {
		g := recv(t, ch)
		if m, ok := by[g.data]; ok {
			t.Errorf("%s to member %d and %d", g.data, m, g.member)
		}
		by[g.data] = g.member
		per[g.member]++
	}
	none(t, ch)
	for m, k := range per {
		if k == 0 {
			t.Errorf("member %d got nothing (per member: %v)", m, per)
		}
	}
	t.Logf("records per member: %v", per)
}

// TestCommitsOnlyAckedPrefix: a record acknowledged before an earlier
// one is not committed past it; after the member stops, a new member gets
// both again, counted as redeliveries: nothing is lost.
func TestCommitsOnlyAckedPrefix(t *testing.T) {
	r := newRig(t, 1)
	a, _ := r.open("a")
	ch := make(chan got, 4)
	ka := r.consume(a, 0, 2, "a", collect(ch, 0))
	r.publish(a, 0, 0, 1)
	first, second := recv(t, ch), recv(t, ch)
	if first.data != "m-0" || second.data != "m-1" {
		t.Fatalf("got %s, %s; want m-0, m-1", first.data, second.data)
	}
	settle(t, second.d.Ack())
	if err := ka.Stop(); err != nil {
		t.Fatal(err)
	}
	if at, meta := r.committed(0); at != 0 || meta != FormatMark(1) {
		t.Fatalf("committed %d (%q) with record 0 unacknowledged; want 0 (%q)", at, meta, FormatMark(1))
	}
	b, fb := r.open("b")
	chb := make(chan got, 4)
	kb := r.consume(b, 0, 2, "b", collect(chb, 1))
	for _, want := range []string{"m-0", "m-1"} {
		g := recv(t, chb)
		if g.data != want || g.d.Attempt != 2 {
			t.Fatalf("b got %s attempt %d, want %s attempt 2", g.data, g.d.Attempt, want)
		}
		settle(t, g.d.Ack())
	}
	none(t, chb)
	if n := fb.count("S1"); n != 2 {
		t.Errorf("redeliveries counted at S1: %d, want 2", n)
	}
	if err := kb.Stop(); err != nil {
		t.Fatal(err)
	}
	if at, _ := r.committed(0); at != 2 {
		t.Errorf("committed %d after both acknowledged, want 2", at)
	}
}

// TestStoppedMemberRebalances: a member stopped with records unsettled
// leaves the group; the other member gets its partition and those records
// again, with Attempt >= 2 and the redeliveries reported.
func TestStoppedMemberRebalances(t *testing.T) {
	const n = 40
	r := newRig(t, 2)
	a, _ := r.open("a")
	b, fb := r.open("b")
	cha, chb := make(chan got, n), make(chan got, n)
	ka := r.consume(a, 0, 5, "a", collect(cha, 0))
	kb := r.consume(b, 0, 5, "b", func(d transport.Delivery) {
		settle(t, d.Ack())
		chb <- got{data: string(d.Data), member: 1, d: d}
	})
	waitAssigned(t, a, func(p [][]int32) bool { return len(p[0]) == 1 }, ka)
	waitAssigned(t, b, func(p [][]int32) bool { return len(p[0]) == 1 }, kb)
	r.publish(a, 0, seq(0, n)...)
	held := map[string]bool{}
	for range 5 { // a's limit: it holds 5, unsettled
		held[recv(t, cha).data] = true
	}
	if err := ka.Stop(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for len(seen) < n {
		g := recv(t, chb)
		if seen[g.data]++; seen[g.data] > 1 {
			t.Errorf("b got %s twice", g.data)
		}
		if held[g.data] && g.d.Attempt < 2 {
			t.Errorf("%s, held by a, came to b with attempt %d", g.data, g.d.Attempt)
		}
	}
	if got := fb.count("S1"); got < len(held) {
		t.Errorf("redeliveries reported: %d, want >= %d", got, len(held))
	}
}

// TestRejectNotRedelivered: a rejected record counts as done: it is
// committed past and no member gets it again.
func TestRejectNotRedelivered(t *testing.T) {
	r := newRig(t, 1)
	a, _ := r.open("a")
	ch := make(chan got, 4)
	ka := r.consume(a, 0, 3, "a", collect(ch, 0))
	r.publish(a, 0, 0, 1)
	g0, g1 := recv(t, ch), recv(t, ch)
	settle(t, g1.d.Ack())
	settle(t, g0.d.Reject(errors.New("malformed")))
	none(t, ch)
	if err := ka.Stop(); err != nil {
		t.Fatal(err)
	}
	b, _ := r.open("b")
	chb := make(chan got, 4)
	r.consume(b, 0, 3, "b", collect(chb, 1))
	r.publish(b, 0, 2)
	if g := recv(t, chb); g.data != "m-2" || g.d.Attempt != 1 {
		t.Fatalf("b got %s attempt %d first, want m-2 attempt 1", g.data, g.d.Attempt)
	} else {
		settle(t, g.d.Ack())
	}
	none(t, chb)
}

// TestReleaseRedelivers: a released record is delivered again (Attempt 2,
// counted), and is not committed past until it is acknowledged.
func TestReleaseRedelivers(t *testing.T) {
	r := newRig(t, 1)
	a, fa := r.open("a")
	ch := make(chan got, 4)
	ka := r.consume(a, 0, 1, "a", collect(ch, 0))
	r.publish(a, 0, 0, 1)
	g := recv(t, ch)
	if g.data != "m-0" || g.d.Attempt != 1 {
		t.Fatalf("got %s attempt %d, want m-0 attempt 1", g.data, g.d.Attempt)
	}
	settle(t, g.d.Release())
	if err := g.d.Ack(); err == nil {
		t.Error("a second settlement of one delivery was not refused")
	}
	g = recv(t, ch)
	if g.data != "m-0" || g.d.Attempt != 2 {
		t.Fatalf("after release got %s attempt %d, want m-0 attempt 2", g.data, g.d.Attempt)
	}
	if n := fa.count("S1"); n != 1 {
		t.Errorf("redeliveries counted: %d, want 1", n)
	}
	settle(t, g.d.Ack())
	g = recv(t, ch)
	if g.data != "m-1" || g.d.Attempt != 1 {
		t.Fatalf("then got %s attempt %d, want m-1 attempt 1", g.data, g.d.Attempt)
	}
	settle(t, g.d.Release())
	g = recv(t, ch) // m-1 again: released, so not committed past
	settle(t, g.d.Ack())
	if err := ka.Stop(); err != nil {
		t.Fatal(err)
	}
	if at, _ := r.committed(0); at != 2 {
		t.Errorf("committed %d, want 2", at)
	}
}

// TestOpenUnreachable: a broker that does not answer (a closed port)
// fails Open within its bound, naming the broker.
func TestOpenUnreachable(t *testing.T) {
	benchkit.CheckLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const bound = 2 * time.Second
	tr := Transport{Brokers: []string{addr}, Options: Options{OpenTimeout: bound}}
	start := time.Now()
	c, err := tr.Open(context.Background(), transport.Env{Name: "x"})
	took := time.Since(start)
	if err == nil {
		_ = c.Close()
		t.Fatal("Open succeeded on a closed port")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name %s: %v", addr, err)
	}
	if took > bound+time.Second {
		t.Errorf("Open took %v, bound %v", took, bound)
	}
	t.Logf("%v after %v", err, took)
}

// TestOpenNeedsBrokers: with no Brokers and no KAFKA_BROKERS, Open says
// to set KAFKA_BROKERS; credentials in a broker address never show.
func TestOpenNeedsBrokers(t *testing.T) {
	benchkit.CheckLeaks(t)
	t.Setenv(EnvBrokers, "")
	_, err := Transport{}.Open(context.Background(), transport.Env{})
	if err == nil || !strings.Contains(err.Error(), EnvBrokers) {
		t.Errorf("Open without brokers: %v; want an error naming %s", err, EnvBrokers)
	}
	t.Setenv(EnvBrokers, "kafka://user:s3cret@127.0.0.1:1")
	_, err = Transport{}.Open(context.Background(), transport.Env{})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Open with credentials: %v; want an error naming the broker, password masked", err)
	}
}

// TestSetupTeardown: Setup creates a topic per destination with
// Partitions partitions, again without error; Teardown deletes them.
func TestSetupTeardown(t *testing.T) {
	r := newRig(t, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.admin.Setup(ctx, r.run); err != nil {
		t.Fatalf("second setup: %v", err)
	}
	topics := []string{Topic(r.run, 0), Topic(r.run, 1), Topic(r.run, 2)}
	details, err := r.admin.Admin().ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{3, 1, 1} {
		if d := details[topics[i]]; d.Err != nil || len(d.Partitions) != want {
			t.Errorf("topic %s: %d partitions (%v), want %d", topics[i], len(d.Partitions), d.Err, want)
		}
	}
	if err := r.admin.Teardown(ctx, r.run); err != nil {
		t.Fatal(err)
	}
	// Kafka deletes topics asynchronously: wait (bounded) until none is
	// listed.
	for {
		details, err := r.admin.Admin().ListTopics(ctx, topics...)
		if err != nil {
			t.Fatal(err)
		}
		left := topicsListed(details)
		if len(left) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topics %v still there after teardown", left)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicsListed(d kadm.TopicDetails) []string {
	var left []string
	for name, td := range d {
		if td.Err == nil {
			left = append(left, name)
		}
	}
	sort.Strings(left)
	return left
}

// TestNamesAndEnviron: topic names are valid and distinct, the partition
// rule, and Environ.
func TestNamesAndEnviron(t *testing.T) {
	run := transport.Run{Subjects: bus.Subjects{Prefix: "natspipe.a b/c"}, Stages: 2, Concurrency: []int{4, 0}}
	if got := Topic(run, 0); got != "natspipe.a_b_c.s1" {
		t.Errorf("Topic = %q", got)
	}
	if Topic(run, 0) == Topic(run, 1) || Topic(run, 1) == Topic(run, 2) {
		t.Error("topics not distinct")
	}
	long := transport.Run{Subjects: bus.Subjects{Prefix: strings.Repeat("x", 300)}, Stages: 1}
	if got := Topic(long, 0); len(got) > MaxTopicLen || got == Topic(long, 1) {
		t.Errorf("long topic %q (%d)", got, len(got))
	}
	if got := []int{Partitions(run, 0), Partitions(run, 1), Partitions(run, 2)}; !slices.Equal(got, []int{4, 1, 1}) {
		t.Errorf("Partitions = %v, want [4 1 1]", got)
	}
	if got := (Transport{Brokers: []string{"a:1", "b:2"}}).Environ(); !slices.Equal(got, []string{"KAFKA_BROKERS=a:1,b:2"}) {
		t.Errorf("Environ = %q", got)
	}
	if got := (Transport{}).Environ(); got != nil {
		t.Errorf("Environ without brokers = %q, want nil", got)
	}
}

// TestConsumeClusterGone: a member that cannot join (the cluster went
// away) fails Consume within its context, naming the group, and leaves
// nothing running.
func TestConsumeClusterGone(t *testing.T) {
	benchkit.CheckLeaks(t)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	tr := Transport{Brokers: cluster.ListenAddrs(), Options: testOptions()}
	run := transport.Run{Subjects: bus.NewSubjects(), Stages: 1}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := tr.Open(ctx, transport.Env{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Setup(ctx, run); err != nil {
		t.Fatal(err)
	}
	cluster.Close()
	const bound = time.Second
	jctx, jcancel := context.WithTimeout(context.Background(), bound)
	defer jcancel()
	start := time.Now()
	_, err = c.Consume(jctx, run, 0, transport.ConsumeOptions{Limit: 1}, func(transport.Delivery) {})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), Group(run, 0)) {
		t.Errorf("Consume with the cluster gone: %v; want an error naming group %s", err, Group(run, 0))
	}
	if took > bound+2*time.Second {
		t.Errorf("Consume took %v, bound %v", took, bound)
	}
	t.Logf("%v after %v", err, took)
}
