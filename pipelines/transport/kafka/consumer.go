package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transport"
	"github.com/natspipe/natspipe/pipelines/transport/js"
)

// markPrefix starts the metadata of a member's offset commit: the highest
// offset handed out on the partition so far follows it, so the
// partition's next owner knows which records are redeliveries.
const markPrefix = "natspipe:h="

func formatMark(high int64) string { return markPrefix + strconv.FormatInt(high, 10) }

func parseMark(meta *string) (int64, bool) {
	if meta == nil || !strings.HasPrefix(*meta, markPrefix) {
		return 0, false
	}
	h, err := strconv.ParseInt(strings.TrimPrefix(*meta, markPrefix), 10, 64)
	return h, err == nil
}

// errorBackoff is how long a member waits before it polls again after a
// poll that returned only errors.
const errorBackoff = 100 * time.Millisecond

// Consume implements transport.Conn: this process becomes one member of
// the consumer group of destination stage (Group), consuming its topic
// through a franz-go client of its own: cooperative-sticky balancing, no
// auto-commit, a partition without a committed offset read from its start
// (so a record published before the member joined still reaches the
// group). It returns once the group has given the member its first
// assignment (maybe empty), within ctx and AdminTimeout.
//
// The member's goroutine polls at most as many records as it has free
// slots (opts.Limit minus the records handed out and not settled; 256 at a
// time without a Limit) and hands them to h one at a time; at the Limit it
// polls no more until a record is settled.
func (c *Conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	if stage < 0 || stage > run.Stages {
		return nil, fmt.Errorf("kafka transport: stage %d out of range 0..%d", stage, run.Stages)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("kafka transport: consume %s: limit %d < 0", js.DestName(run, stage), opts.Limit)
	}
	k := &consumer{
		c:          c,
		name:       js.DestName(run, stage),
		topic:      Topic(run, stage),
		group:      Group(run, stage),
		limit:      opts.Limit,
		h:          h,
		joined:     make(chan struct{}),
		halted:     make(chan struct{}),
		loopDone:   make(chan struct{}),
		commitKick: make(chan struct{}, 1),
		commitStop: make(chan struct{}),
		commitDone: make(chan struct{}),
		parts:      make(map[int32]*partition),
		seen:       make(map[int32]int64),
		changed:    make(chan struct{}),
	}
	if rs, ok := c.faults.(pipelines.RedeliverySink); ok {
		k.redeliveries = rs
	}
	id := c.name
	if opts.Member != "" {
		id += "-" + opts.Member
	}
	k.clientCtx, k.clientCancel = context.WithCancel(context.Background())
	k.pollCtx, k.pollCancel = context.WithCancel(k.clientCtx)
	o := c.opts
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.seeds...),
		kgo.ClientID(id),
		kgo.DisableClientMetrics(),
		kgo.WithContext(k.clientCtx),
		kgo.ConsumerGroup(k.group),
		kgo.ConsumeTopics(k.topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(o.SessionTimeout),
		kgo.HeartbeatInterval(o.HeartbeatInterval),
		kgo.RebalanceTimeout(o.RebalanceTimeout),
		kgo.FetchMaxWait(o.FetchMaxWait),
		kgo.OnPartitionsAssigned(k.assigned),
		kgo.OnPartitionsRevoked(k.revoked),
		kgo.OnPartitionsLost(k.lost),
		kgo.OnOffsetsFetched(k.fetched),
	)
	if err != nil {
		k.clientCancel()
		return nil, fmt.Errorf("kafka transport: consumer %s (group %s) on %s: %w", k.name, k.group, c.shown, err)
	}
	k.cl = cl
	go k.committer()
	go k.run()
	actx, cancel := c.bounded(ctx)
	defer cancel()
	select {
	case <-k.joined:
	case <-actx.Done():
		_ = k.Stop()
		return nil, fmt.Errorf("kafka transport: consumer %s: join group %s on %s: %w", k.name, k.group, c.shown, actx.Err())
	}
	c.mu.Lock()
	c.consumers = append(c.consumers, k)
	c.mu.Unlock()
	return k, nil
}

// entryState is where a record handed out stands.
type entryState uint8

const (
	handed   entryState = iota // given to the handler, not settled
	finished                   // acknowledged or rejected: done
	released                   // given back: to be handed out again
)

// entry is one record handed out by a member, until its partition's
// commit passes it.
type entry struct {
	rec     *kgo.Record
	part    *partition // the ownership it was handed out under
	attempt int
	state   entryState
}

// partition is a member's state of one partition it owns.
type partition struct {
	id int32
	// entries are the records handed out since the commit point, in
	// offset order; the first that is not finished is the commit point.
	entries []*entry
	// next is the offset after the last record handed out; -1 before the
	// first.
	next int64
	// high is the highest offset handed out on the partition, by this
	// member or (from the last commit's metadata) by an earlier owner: a
	// record at or below it is a redelivery. -1: none.
	high          int64
	handedOut     int   // entries handed and not settled
	committed     int64 // the last offset committed (or fetched); -1 none
	committedHigh int64 // the high recorded with it
	revoking      bool  // being revoked: hand out nothing more
}

// point is the partition's commit point: the offset of the first record
// handed out and not finished, or the one after the last handed out. It
// drops the finished entries before it.
func (p *partition) point() int64 {
	for len(p.entries) > 0 && p.entries[0].state == finished {
		p.entries[0] = nil
		p.entries = p.entries[1:]
	}
	if len(p.entries) > 0 {
		return p.entries[0].rec.Offset
	}
	return p.next
}

// consumer is one member of a destination's group.
type consumer struct {
	c            *Conn
	name         string // the destination: "S2", "done"
	topic, group string
	limit        int
	h            transport.Handler
	cl           *kgo.Client
	redeliveries pipelines.RedeliverySink // nil: not counted

	clientCtx    context.Context // the client's: cancelled to cut its requests short
	clientCancel context.CancelFunc
	pollCtx      context.Context // cancelled to stop polling (Drain, Stop)
	pollCancel   context.CancelFunc

	joined     chan struct{} // closed at the first assignment
	joinOnce   sync.Once
	halted     chan struct{} // closed by Stop: hand out nothing more
	loopDone   chan struct{} // closed when run returns: the handler's last call is over
	commitKick chan struct{} // something to commit
	commitStop chan struct{}
	commitDone chan struct{}
	commitMu   sync.Mutex  // one commit at a time
	stopping   atomic.Bool // leaving: a revoke does not wait for work in flight

	haltOnce, drainOnce, finishOnce sync.Once
	drainErr, finishErr             error

	mu        sync.Mutex
	parts     map[int32]*partition // owned now
	seen      map[int32]int64      // highest offset this member ever handed out, per partition
	queue     []*kgo.Record        // polled, not yet handed out
	redo      []*entry             // released, to hand out again
	unsettled int                  // handed out and not settled
	draining  bool                 // Drain or Stop: poll no more, hand out no released record
	changed   chan struct{}        // closed and replaced at every settlement, drain and stop
}

// broadcastLocked wakes whoever waits for the member's state to change.
func (k *consumer) broadcastLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

func (k *consumer) kickCommit() {
	select {
	case k.commitKick <- struct{}{}:
	default:
	}
}

// assigned is the group's OnPartitionsAssigned: the member owns added
// now. The group calls it at every assignment, even an empty one.
func (k *consumer) assigned(_ context.Context, _ *kgo.Client, added map[string][]int32) {
	k.mu.Lock()
	for _, id := range added[k.topic] {
		if k.parts[id] != nil {
			continue
		}
		high, ok := k.seen[id]
		if !ok {
			high = -1
		}
		k.parts[id] = &partition{id: id, next: -1, high: high, committed: -1, committedHigh: -1}
	}
	k.mu.Unlock()
	k.joinOnce.Do(func() { close(k.joined) })
	k.c.notifyAssignment()
}

// fetched is the group's OnOffsetsFetched, after assigned and before the
// member fetches the new partitions: it reads each commit's mark (the
// highest offset handed out by the partition's earlier owners).
func (k *consumer) fetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	visit := func(id int32, offset int64, meta *string) {
		p := k.parts[id]
		if p == nil {
			return
		}
		if offset >= 0 {
			p.committed = max(p.committed, offset)
		}
		if h, ok := parseMark(meta); ok {
			p.high = max(p.high, h)
			p.committedHigh = max(p.committedHigh, h)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, pp := range t.Partitions {
				visit(pp.Partition, pp.Offset, pp.Metadata)
			}
		}
	}
	for _, t := range resp.Topics {
		for _, pp := range t.Partitions {
			visit(pp.Partition, pp.Offset, pp.Metadata)
		}
	}
	return nil
}

// revoked is the group's OnPartitionsRevoked (a rebalance moves
// partitions away, or the member leaves): it stops handing out the
// partitions' records, waits within RevokeWait for those in flight to be
// settled (not when the member is stopping), commits the partitions' done
// prefix and forgets them. A record settled later is its next owner's to
// deliver again.
func (k *consumer) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ids := revoked[k.topic]
	if len(ids) == 0 {
		return
	}
	k.mu.Lock()
	for _, id := range ids {
		if p := k.parts[id]; p != nil {
			p.revoking = true
		}
	}
	k.mu.Unlock()
	if !k.stopping.Load() {
		_ = k.waitSettled(ids, k.c.opts.RevokeWait)
	}
	cctx, cancel := context.WithTimeout(ctx, k.c.opts.AdminTimeout)
	// An error leaves the records to be delivered again.
	_ = k.commit(cctx, ids)
	cancel()
	k.forget(ids)
}

// lost is the group's OnPartitionsLost (the member was dropped from the
// group): it forgets the partitions without committing; their next owner
// delivers again what was not committed.
func (k *consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	k.forget(lost[k.topic])
}

func (k *consumer) forget(ids []int32) {
	k.mu.Lock()
	for _, id := range ids {
		delete(k.parts, id)
	}
	k.broadcastLocked()
	k.mu.Unlock()
	k.c.notifyAssignment()
}

// waitSettled waits, up to d, until no record of the partitions ids (all
// of them when nil) is handed out and unsettled; false if some still are.
func (k *consumer) waitSettled(ids []int32, d time.Duration) bool {
	t := time.NewTimer(max(d, time.Millisecond))
	defer t.Stop()
	for {
		k.mu.Lock()
		busy := k.unsettled > 0
		if ids != nil {
			busy = false
			for _, id := range ids {
				if p := k.parts[id]; p != nil && p.handedOut > 0 {
					busy = true
				}
			}
		}
		ch := k.changed
		k.mu.Unlock()
		if !busy {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// commit commits the done prefix of the partitions ids (all owned when
// nil) that moved since their last commit, with each one's mark.
func (k *consumer) commit(ctx context.Context, ids []int32) error {
	k.commitMu.Lock()
	defer k.commitMu.Unlock()
	offsets := make(map[int32]kgo.EpochOffset)
	marks := make(map[int32]int64)
	k.mu.Lock()
	add := func(p *partition) {
		if p == nil || p.next < 0 {
			return // nothing handed out
		}
		if at := p.point(); at > p.committed || p.high > p.committedHigh {
			offsets[p.id] = kgo.EpochOffset{Epoch: -1, Offset: at}
			marks[p.id] = p.high
		}
	}
	if ids == nil {
		for _, p := range k.parts {
			add(p)
		}
	} else {
		for _, id := range ids {
			add(k.parts[id])
		}
	}
	k.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	cctx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				rp := &req.Topics[i].Partitions[j]
				if h, ok := marks[rp.Partition]; ok {
					m := formatMark(h)
					rp.Metadata = &m
				}
			}
		}
		return nil
	})
	var err error
	k.cl.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{k.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
			if cerr != nil {
				err = cerr
				return
			}
			for _, t := range resp.Topics {
				for _, rp := range t.Partitions {
					if perr := kerr.ErrorForCode(rp.ErrorCode); perr != nil {
						err = fmt.Errorf("partition %d: %w", rp.Partition, perr)
						delete(offsets, rp.Partition)
					}
				}
			}
		})
	k.mu.Lock()
	for id, eo := range offsets {
		if p := k.parts[id]; p != nil {
			p.committed = max(p.committed, eo.Offset)
			p.committedHigh = max(p.committedHigh, marks[id])
		}
	}
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("kafka transport: commit %s (group %s) on %s: %w", k.name, k.group, k.c.shown, err)
	}
	return nil
}

// committer commits in the background what settlements and hand-outs
// moved, at most once per CommitInterval, until the member leaves. A
// failed commit (a rebalance under way) is tried again.
func (k *consumer) committer() {
	defer close(k.commitDone)
	for {
		select {
		case <-k.commitKick:
		case <-k.commitStop:
			return
		}
		ctx, cancel := context.WithTimeout(k.clientCtx, k.c.opts.AdminTimeout)
		if err := k.commit(ctx, nil); err != nil {
			k.kickCommit()
		}
		cancel()
		t := time.NewTimer(k.c.opts.CommitInterval)
		select {
		case <-t.C:
		case <-k.commitStop:
			t.Stop()
			return
		}
	}
}

// run is the member's goroutine: it hands out polled and released records
// within the Limit, and polls for more, until it drains or stops.
func (k *consumer) run() {
	defer close(k.loopDone)
	for {
		e, wait, n, exit := k.next()
		switch {
		case exit:
			return
		case e != nil:
			k.hand(e)
		case wait != nil:
			select {
			case <-wait:
			case <-k.halted:
			}
		default:
			k.poll(n)
		}
	}
}

// next decides the member's next step: hand out e, wait for wait (the
// Limit is reached), poll n records, or exit.
func (k *consumer) next() (e *entry, wait <-chan struct{}, n int, exit bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	select {
	case <-k.halted:
		return nil, nil, 0, true
	default:
	}
	if k.limit > 0 && k.unsettled >= k.limit {
		return nil, k.changed, 0, false
	}
	for !k.draining && len(k.redo) > 0 {
		e := k.redo[0]
		k.redo[0] = nil
		k.redo = k.redo[1:]
		p := e.part
		if k.parts[p.id] != p || p.revoking || e.state != released {
			continue // its partition went to another member, which delivers it
		}
		e.state = handed
		e.attempt++
		p.handedOut++
		k.unsettled++
		return e, nil, 0, false
	}
	for len(k.queue) > 0 {
		r := k.queue[0]
		k.queue[0] = nil
		k.queue = k.queue[1:]
		p := k.parts[r.Partition]
		if p == nil || p.revoking || r.Offset < p.next {
			continue // not ours (any more), or already handed out
		}
		e := &entry{rec: r, part: p, attempt: 1, state: handed}
		if r.Offset <= p.high {
			e.attempt = 2
		}
		p.entries = append(p.entries, e)
		p.next = r.Offset + 1
		p.high = max(p.high, r.Offset)
		if h, ok := k.seen[p.id]; !ok || r.Offset > h {
			k.seen[p.id] = r.Offset
		}
		p.handedOut++
		k.unsettled++
		return e, nil, 0, false
	}
	if k.draining {
		return nil, nil, 0, true
	}
	n = unboundedBatch
	if k.limit > 0 {
		n = k.limit - k.unsettled
	}
	return nil, nil, n, false
}

// hand gives e to the handler, counting a redelivery.
func (k *consumer) hand(e *entry) {
	s := &settler{k: k, e: e}
	select {
	case <-k.halted:
		// Stopped meanwhile: the record stays unsettled and uncommitted.
		_ = s.settle(released, "release")
		return
	default:
	}
	k.kickCommit() // the mark moved
	if e.attempt > 1 && k.redeliveries != nil {
		k.redeliveries.Redelivered(k.name)
	}
	k.h(transport.Delivery{Data: e.rec.Value, Attempt: e.attempt, Settler: s})
}

// poll takes up to n records from the client into the queue. Errors the
// client returns (it retries the transient ones itself) break the run,
// unless the member is stopping.
func (k *consumer) poll(n int) {
	fs := k.cl.PollRecords(k.pollCtx, n)
	failed := false
	fs.EachError(func(topic string, p int32, err error) {
		if k.pollCtx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		failed = true
		k.c.faults.Fault(fmt.Errorf("kafka transport: consume %s (topic %s, partition %d) on %s: %w", k.name, topic, p, k.c.shown, err))
	})
	recs := fs.Records()
	if len(recs) > 0 {
		k.mu.Lock()
		k.queue = append(k.queue, recs...)
		k.mu.Unlock()
		return
	}
	if failed {
		t := time.NewTimer(errorBackoff)
		select {
		case <-t.C:
		case <-k.pollCtx.Done():
			t.Stop()
		}
	}
}

// Pending implements transport.Consumer: the records polled and not yet
// handed out, the released ones waiting to be handed out again, and those
// the client has fetched and buffered.
func (k *consumer) Pending() int {
	k.mu.Lock()
	n := len(k.queue) + len(k.redo)
	k.mu.Unlock()
	return n + int(k.cl.BufferedFetchRecords())
}

// Unsettled is the number of records handed out and not yet settled.
func (k *consumer) Unsettled() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.unsettled
}

// assignedPartitions are the partitions the member owns now.
func (k *consumer) assignedPartitions() []int32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	ids := make([]int32, 0, len(k.parts))
	for id := range k.parts {
		ids = append(ids, id)
	}
	return ids
}

// Drain implements transport.Consumer: it stops polling, hands out the
// records already polled (within the Limit) and returns once the handler
// has returned for the last time, after committing what is done. The
// member stays in its group, committing the records settled after Drain,
// until its Conn is drained (which waits for them and then leaves the
// group) or closed.
func (k *consumer) Drain(timeout time.Duration) error {
	k.drainOnce.Do(func() {
		deadline := time.Now().Add(max(timeout, time.Millisecond))
		k.mu.Lock()
		k.draining = true
		k.broadcastLocked()
		k.mu.Unlock()
		k.pollCancel()
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-k.loopDone:
			t.Stop()
		case <-t.C:
			k.halt()
			k.drainErr = fmt.Errorf("kafka transport: drain consumer %s: not drained after %v", k.name, timeout)
			return
		}
		ctx, cancel := context.WithDeadline(k.clientCtx, deadline)
		defer cancel()
		// Best effort: the Conn's drain commits again and reports.
		_ = k.commit(ctx, nil)
	})
	return k.drainErr
}

// halt stops handing out: Stop, or a Drain out of time.
func (k *consumer) halt() {
	k.haltOnce.Do(func() {
		k.stopping.Store(true)
		k.mu.Lock()
		k.draining = true
		close(k.halted)
		k.broadcastLocked()
		k.mu.Unlock()
		k.pollCancel()
	})
}

// Stop implements transport.Consumer: it stops handing out records, waits
// (within transport.CloseTimeout) for the handler's call in progress,
// commits what is done and leaves the group, whose other members then
// get the member's partitions and, from the last commit, its unsettled
// records.
func (k *consumer) Stop() error {
	k.halt()
	var err error
	t := time.NewTimer(transport.CloseTimeout)
	select {
	case <-k.loopDone:
		t.Stop()
	case <-t.C:
		err = fmt.Errorf("kafka transport: stop consumer %s: handler still busy after %v", k.name, transport.CloseTimeout)
	}
	return errors.Join(err, k.finish(0))
}

// finish ends the member once: it waits up to wait for the records handed
// out to be settled, commits what is done and leaves the group.
func (k *consumer) finish(wait time.Duration) error {
	k.finishOnce.Do(func() {
		var errs []error
		deadline := time.Now().Add(k.c.opts.AdminTimeout)
		if wait > 0 {
			if !k.waitSettled(nil, wait) {
				errs = append(errs, fmt.Errorf("kafka transport: consumer %s: %d records unsettled after %v (delivered again to the group)", k.name, k.Unsettled(), wait))
			}
			deadline = time.Now().Add(max(time.Millisecond, min(k.c.opts.AdminTimeout, wait)))
		}
		k.halt()
		close(k.commitStop)
		<-k.commitDone
		ctx, cancel := context.WithDeadline(k.clientCtx, deadline)
		if err := k.commit(ctx, nil); err != nil {
			errs = append(errs, err)
		}
		select {
		case <-k.joined:
		default:
			k.clientCancel() // never joined (the brokers are away): nothing to leave
		}
		// Leaving revokes what is left, which commits nothing more.
		if err := k.cl.LeaveGroupContext(ctx); err != nil {
			k.clientCancel() // cut the leave short: Close does not wait for it
		}
		cancel()
		k.cl.Close()
		k.clientCancel()
		k.finishErr = errors.Join(errs...)
	})
	return k.finishErr
}

// settler settles one record handed out; only the first call counts.
type settler struct {
	k    *consumer
	e    *entry
	done atomic.Bool
}

// Ack implements transport.Settler: the record is done; the partition's
// commit passes it once every record before it is done too.
func (s *settler) Ack() error { return s.settle(finished, "ack") }

// Reject implements transport.Settler: Kafka cannot drop one record, so
// it counts as done (committed past), and is never delivered again.
func (s *settler) Reject(error) error { return s.settle(finished, "reject") }

// Release implements transport.Settler: the record is not committed past
// and the member hands it out again (Attempt + 1), unless it is draining
// or stopping, or the partition has gone to another member: then the
// partition's next owner delivers it again.
func (s *settler) Release() error { return s.settle(released, "release") }

func (s *settler) settle(state entryState, what string) error {
	if !s.done.CompareAndSwap(false, true) {
		return fmt.Errorf("kafka transport: %s on %s: delivery already settled", what, s.k.name)
	}
	k, e := s.k, s.e
	k.mu.Lock()
	k.unsettled--
	p := e.part
	owned := k.parts[p.id] == p
	if owned {
		p.handedOut--
		e.state = state
		if state == released && !k.draining {
			k.redo = append(k.redo, e)
		}
	}
	k.broadcastLocked()
	k.mu.Unlock()
	if owned && state == finished {
		k.kickCommit()
	}
	return nil
}
