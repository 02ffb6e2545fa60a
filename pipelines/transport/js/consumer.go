package js

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/natspipe/natspipe/pipelines"
	"github.com/natspipe/natspipe/pipelines/transport"
)

// The JetStream acknowledgement bodies, published to a delivery's reply
// subject (the server's $JS.ACK... subject).
var (
	ackBody      = []byte("+ACK")
	nakBody      = []byte("-NAK")
	termBody     = []byte("+TERM")
	progressBody = []byte("+WPI")
)

// pullGrace is how long past its expiry a member waits for a pull
// request's end before it forgets the request (the server lost it: a
// restart) and pulls again.
const pullGrace = time.Second

// pendingMsgsHeader, on a status that ends a pull request, is how many of
// the messages it asked for it did not deliver.
const pendingMsgsHeader = "Nats-Pending-Messages"

// Consume implements transport.Conn: this process becomes one member of
// the durable consumer of destination stage (Setup created it; Consume
// only binds to it, within APITimeout).
//
// The member keeps one subscription to an inbox of its own for the whole
// run and sends the server pull requests (CONSUMER.MSG.NEXT) for exactly
// its free slots: opts.Limit minus the deliveries it works on minus those
// it has asked for, one request of one message per slot (for a Limit of 0,
// requests of up to 256 at a time). A slot frees when its delivery is
// settled or, earlier, when the router reports that stage work on it has
// ended (Settler.WorkEnded): the member then pulls its next message while
// the forward waits for its PubAck.
//
// The server answers a member's requests in the order they came; a
// message carries its stream subject, not the request's, so the member
// counts it against its oldest open request, and a status (408: expired)
// names its request by its reply subject. A request the server never ends
// (it lost it in a restart) is forgotten after its expiry and a grace. A
// message that arrives when the member has no free slot (its count went
// wrong: a forgotten request answered after all) is given back at once
// (Nak), never worked on: the member never has more than its Limit in
// work.
func (c *Conn) Consume(ctx context.Context, run transport.Run, stage int, opts transport.ConsumeOptions, h transport.Handler) (transport.Consumer, error) {
	if stage < 0 || stage > run.Stages {
		return nil, fmt.Errorf("js transport: stage %d out of range 0..%d", stage, run.Stages)
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("js transport: consume %s: limit %d < 0", DestName(run, stage), opts.Limit)
	}
	stream, name := StreamName(run.Subjects), DestName(run, stage)
	forwardTo := ""
	if stage < run.Stages {
		forwardTo = DestName(run, stage+1)
	}
	actx, cancel := c.bounded(ctx)
	defer cancel()
	cons, err := c.js.Consumer(actx, stream, name)
	if err != nil {
		return nil, fmt.Errorf("js transport: consumer %s of stream %s on %s (was the run set up?): %w", name, stream, c.server, err)
	}
	kctx, kcancel := context.WithCancel(context.Background())
	// The consumer's AckWait is the set-up's, which may differ from this
	// process's options.
	k := &consumer{
		c:          c,
		name:       name,
		forwardTo:  forwardTo,
		reconnects: c.nc.Stats().Reconnects,
		next:       jetstream.DefaultAPIPrefix + "CONSUMER.MSG.NEXT." + stream + "." + name,
		inbox:      c.nc.NewInbox(),
		h:          h,
		limit:      opts.Limit,
		ackWait:    c.opts.AckWait,
		expiry:     c.opts.PullExpiry,
		ctx:        kctx,
		cancel:     kcancel,
		unsettled:  make(map[*settler]time.Time),
	}
	if info := cons.CachedInfo(); info != nil {
		if info.Config.AckWait > 0 {
			k.ackWait = info.Config.AckWait
		}
		// The lookahead request is filled only when, after it, as many
		// messages wait as the stage's other members have slots.
		if total, err := strconv.Atoi(info.Config.Metadata[concurrencyKey]); err == nil && opts.Limit > 0 && !c.opts.Strict {
			k.ahead, k.aheadMin = 1, max(1, total-opts.Limit+1)
		}
	}
	if k.ahead > 0 {
		k.aheadInbox = c.nc.NewInbox()
		if k.aheadSub, err = c.nc.Subscribe(k.aheadInbox+".*", k.receive); err != nil {
			kcancel()
			return nil, fmt.Errorf("js transport: consumer %s on %s: subscribe to its lookahead inbox: %w", name, c.server, err)
		}
	}
	if k.sub, err = c.nc.Subscribe(k.inbox+".*", k.receive); err != nil {
		kcancel()
		k.unsubscribeAhead()
		return nil, fmt.Errorf("js transport: consumer %s on %s: subscribe to its inbox: %w", name, c.server, err)
	}
	// The server knows the inbox before the first pull's answer.
	if err := c.nc.FlushWithContext(actx); err != nil {
		kcancel()
		_ = k.sub.Unsubscribe()
		k.unsubscribeAhead()
		return nil, fmt.Errorf("js transport: consumer %s on %s: subscribe to its inbox: %w", name, c.server, err)
	}
	k.loops.Add(1)
	go k.tend()
	k.refill()
	c.mu.Lock()
	c.consumers = append(c.consumers, k)
	c.mu.Unlock()
	return k, nil
}

// pullRequest is one pull request the member sent and the server has not
// finished answering.
type pullRequest struct {
	reply    string    // its reply subject
	ahead    bool      // a lookahead request
	left     int       // messages asked for and not yet arrived
	deadline time.Time // past it, the member forgets the request
}

// consumer is one member's consumption of a destination.
type consumer struct {
	c    *Conn
	name string
	// forwardTo names the destination its deliveries are forwarded to;
	// "" for the sink.
	forwardTo string
	next      string // the consumer's pull subject
	inbox     string // requests are answered on inbox + "." + their number
	sub       *nats.Subscription
	h         transport.Handler
	limit     int
	// ahead is how many lookahead requests the member keeps open (0 or
	// 1; see the package doc), filled only when aheadMin messages wait;
	// they are answered on aheadInbox + "." + their number.
	ahead      int
	aheadMin   int
	aheadInbox string
	aheadSub   *nats.Subscription
	// ackWait is the server's AckWait for this consumer.
	ackWait time.Duration
	expiry  time.Duration // of a pull request at the server

	ctx    context.Context // cancelled to stop pulling
	cancel context.CancelFunc
	loops  sync.WaitGroup // tend
	halt   atomic.Bool    // Stop: hand nothing more to the handler
	hmu    sync.Mutex     // held while the handler runs
	closed bool           // under hmu: the handler is never called again
	once   sync.Once
	result error

	mu         sync.Mutex
	seq        uint64                 // pull requests sent
	reconnects uint64                 // the connection's reconnects when last tended
	requests   []*pullRequest         // open, oldest first
	requested  int                    // sum of requests' left
	askedAhead int                    // sum of lookahead requests' left
	working    int                    // given to the handler; stage work not ended, not settled
	unsettled  map[*settler]time.Time // given to the handler, not settled; when received or last extended
}

// freeLocked is how many more messages the member may ask for now: for
// free slots, and by lookahead.
func (k *consumer) freeLocked() (slots, ahead int) {
	if k.limit == 0 {
		return unboundedBatch - k.requested, 0
	}
	strict := k.requested - k.askedAhead
	slots = max(0, k.limit-k.working-strict)
	ahead = max(0, min(k.ahead-k.askedAhead, k.limit+k.ahead-k.working-k.requested-slots))
	return slots, ahead
}

// refill asks the server for as many messages as the member has free
// slots, unless it is stopping: one request per slot, or, without a
// Limit, one request for them all; and keeps its lookahead request open.
func (k *consumer) refill() {
	if k.ctx.Err() != nil {
		return
	}
	k.mu.Lock()
	n, ahead := k.freeLocked()
	// A member without a Limit (the sink) asks again once half its batch
	// has arrived, not for every message.
	if k.limit == 0 && n < unboundedBatch/2 {
		n = 0
	}
	if n <= 0 && ahead <= 0 {
		k.mu.Unlock()
		return
	}
	batch, count := 1, n
	if k.limit == 0 {
		batch, count = n, min(n, 1)
	}
	sent := make([]*pullRequest, 0, count+ahead)
	deadline := time.Now().Add(k.expiry + pullGrace)
	for i := range count + ahead {
		k.seq++
		r := &pullRequest{reply: k.inbox + "." + strconv.FormatUint(k.seq, 10), left: batch, deadline: deadline}
		if i >= count {
			r.reply, r.ahead, r.left = k.aheadInbox+"."+strconv.FormatUint(k.seq, 10), true, 1
			k.askedAhead++
		}
		sent = append(sent, r)
	}
	k.requests = append(k.requests, sent...)
	k.requested += n + ahead
	k.mu.Unlock()
	body := fmt.Appendf(nil, `{"batch":%d,"expires":%d,"group":%q}`, batch, k.expiry.Nanoseconds(), PullGroup)
	aheadBody := fmt.Appendf(nil, `{"batch":1,"expires":%d,"group":%q,"min_pending":%d}`, k.expiry.Nanoseconds(), PullGroup, k.aheadMin)
	for _, r := range sent {
		b := body
		if r.ahead {
			b = aheadBody
		}
		if err := k.c.nc.PublishRequest(k.next, r.reply, b); err != nil {
			k.forget(r.reply, -1)
			if errors.Is(err, nats.ErrConnectionClosed) && k.ctx.Err() == nil {
				k.c.faults.Fault(fmt.Errorf("js transport: pull from %s: %w", k.name, err))
			}
			// Otherwise (the connection is away) tend pulls again.
		}
	}
}

// forget drops the open request answered on reply, giving back left of
// the slots it had not filled (all of them when left < 0 or more than
// the request had).
func (k *consumer) forget(reply string, left int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, r := range k.requests {
		if r.reply == reply {
			if left < 0 || left > r.left {
				left = r.left
			}
			k.dropLocked(i, left)
			return
		}
	}
}

// dropLocked removes the open request i, giving back left of its slots.
func (k *consumer) dropLocked(i, left int) {
	r := k.requests[i]
	k.requested -= left
	if r.ahead {
		k.askedAhead -= left
	}
	k.requests = append(k.requests[:i], k.requests[i+1:]...)
}

// unsubscribeAhead ends the lookahead inbox's subscription, if any.
func (k *consumer) unsubscribeAhead() {
	if k.aheadSub != nil {
		_ = k.aheadSub.Unsubscribe()
	}
}

// receive is the inbox's handler (nats.go calls it on the subscription's
// goroutine, one message at a time): a status ends a pull request; a
// message of a known request goes to the handler.
func (k *consumer) receive(m *nats.Msg) {
	if len(m.Data) == 0 && m.Header != nil {
		if code := m.Header.Get("Status"); code != "" {
			k.status(m, code)
			return
		}
	}
	s := &settler{k: k, m: m}
	ahead := m.Sub != nil && m.Sub == k.aheadSub
	k.mu.Lock()
	for i, r := range k.requests {
		if r.ahead != ahead {
			continue
		}
		r.left--
		k.requested--
		if ahead {
			k.askedAhead--
		}
		if r.left <= 0 {
			k.requests = append(k.requests[:i], k.requests[i+1:]...)
		}
		break
	}
	slot := k.limit == 0 || k.working < k.limit+k.ahead
	if slot {
		k.working++
		k.unsettled[s] = time.Now()
	}
	k.mu.Unlock()
	if !slot {
		// No slot for it: an answer to a request the member forgot.
		_ = k.c.nc.Publish(m.Reply, nakBody)
		return
	}
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	if rs, ok := k.c.faults.(pipelines.RedeliverySink); ok && attempt > 1 {
		rs.Redelivered(k.name)
	}
	k.hmu.Lock()
	defer k.hmu.Unlock()
	if k.closed || k.halt.Load() {
		_ = s.Release()
		return
	}
	k.h(transport.Delivery{Data: m.Data, Attempt: attempt, Settler: s})
}

// status handles a status message on the inbox: the end of a pull request
// (408 expired, 409 for a reason), or an idle heartbeat (100, ignored).
func (k *consumer) status(m *nats.Msg, code string) {
	if code == "100" {
		return
	}
	left := -1
	if v, err := strconv.Atoi(m.Header.Get(pendingMsgsHeader)); err == nil {
		left = v
	}
	k.forget(m.Subject, left)
	desc := m.Header.Get("Description")
	switch {
	case code == "408":
		k.refill() // expired unfilled: ask again
	case code == "409" && strings.Contains(strings.ToLower(desc), "consumer deleted"):
		if k.ctx.Err() == nil {
			k.c.faults.Fault(fmt.Errorf("js transport: consumer %s on %s: %w", k.name, k.c.server, jetstream.ErrConsumerDeleted))
		}
	}
	// Otherwise (409 leadership change, max waiting, ...): tend pulls again.
}

// tend, until the consumer stops: forgets pull requests the server should
// have ended long ago, or all of them after a reconnect (the server lost
// them in a restart), and pulls again; and
// tells the server that deliveries held longer than a third of AckWait
// are still being worked on (InProgress), so AckWait bounds how long a
// dead member's messages wait, not how long a stage may work.
func (k *consumer) tend() {
	defer k.loops.Done()
	every := k.ackWait / 3
	t := time.NewTicker(min(every, k.expiry/2))
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case now := <-t.C:
			var old []*settler
			// After a reconnect the server may have lost every open
			// request (a restart): forget them all and pull again. If it
			// kept them, their answers find no slot and are given back.
			reconnects := k.c.nc.Stats().Reconnects
			k.mu.Lock()
			if reconnects != k.reconnects {
				k.reconnects = reconnects
				for len(k.requests) > 0 {
					k.dropLocked(0, k.requests[0].left)
				}
			}
			for len(k.requests) > 0 && now.After(k.requests[0].deadline) {
				k.dropLocked(0, k.requests[0].left)
			}
			for s, since := range k.unsettled {
				if now.Sub(since) >= every {
					old = append(old, s)
					k.unsettled[s] = now
				}
			}
			k.mu.Unlock()
			for _, s := range old {
				if !s.sent.Load() {
					_ = k.c.nc.Publish(s.m.Reply, progressBody)
				}
			}
			k.refill()
		}
	}
}

// subs are the member's subscriptions: its inbox, and its lookahead
// inbox if it has one.
func (k *consumer) subs() []*nats.Subscription {
	if k.aheadSub != nil {
		return []*nats.Subscription{k.sub, k.aheadSub}
	}
	return []*nats.Subscription{k.sub}
}

// Pending implements transport.Consumer.
func (k *consumer) Pending() int {
	total := 0
	for _, sub := range k.subs() {
		if n, _, err := sub.Pending(); err == nil {
			total += n
		}
	}
	return total
}

// Unsettled is the number of deliveries given to the handler and not yet
// settled.
func (k *consumer) Unsettled() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.unsettled)
}

// Drain implements transport.Consumer: it stops pulling, gives the handler
// what already arrived and returns once the handler has returned for the
// last time. A pull request still open at the server may be answered
// after the member left: that message is delivered again after AckWait.
func (k *consumer) Drain(timeout time.Duration) error { return k.stop(false, timeout) }

// Stop implements transport.Consumer: it stops pulling and gives back
// (Nak) what arrived and was not yet handed to the handler.
func (k *consumer) Stop() error { return k.stop(true, transport.CloseTimeout) }

func (k *consumer) stop(halt bool, timeout time.Duration) error {
	k.once.Do(func() {
		k.cancel() // no more pulls
		if halt {
			k.halt.Store(true)
		}
		deadline := time.Now().Add(max(timeout, time.Millisecond))
		// Drain gives the handler what arrived, then closes each
		// subscription once the handler has returned for the last time.
		var draining []*nats.Subscription
		var closed []<-chan nats.SubStatus
		for _, sub := range k.subs() {
			ch := sub.StatusChanged(nats.SubscriptionClosed)
			if err := sub.Drain(); err != nil {
				_ = sub.Unsubscribe() // the connection is closed: nothing more arrives
				continue
			}
			draining, closed = append(draining, sub), append(closed, ch)
		}
		wait := time.NewTimer(max(time.Until(deadline), time.Millisecond))
	waiting:
		for i := range draining {
			select {
			case <-closed[i]:
			case <-wait.C:
				k.halt.Store(true)
				for _, sub := range draining[i:] {
					_ = sub.Unsubscribe()
				}
				k.result = fmt.Errorf("js transport: drain consumer %s: not drained after %v", k.name, timeout)
				break waiting
			}
		}
		wait.Stop()
		k.loops.Wait()
		// After this, a message the subscription had already taken is
		// given back, not handed to the handler.
		locked := make(chan struct{})
		go func() {
			k.hmu.Lock()
			k.closed = true
			k.hmu.Unlock()
			close(locked)
		}()
		t := time.NewTimer(max(time.Until(deadline), time.Millisecond))
		defer t.Stop()
		select {
		case <-locked:
		case <-t.C:
			if k.result == nil {
				k.result = fmt.Errorf("js transport: drain consumer %s: handler still busy after %v", k.name, timeout)
			}
		}
	})
	return k.result
}

// settler settles one delivery; only the first of its calls counts.
type settler struct {
	k     *consumer
	m     *nats.Msg
	done  atomic.Bool // settled, or its settlement decided
	freed atomic.Bool // its slot is free: work ended or settled
	sent  atomic.Bool // its settlement sent to the server
	// id is the Nats-Msg-Id of its forward while it is registered with
	// the Conn for it (WorkEnded).
	id string

	fmu        sync.Mutex
	background bool   // its forward is being published in the background
	fwdDone    bool   // ... and is done, with fwdErr
	fwdErr     error  //
	what       string // the settlement decided while the forward was going
	body       []byte
}

// WorkEnded tells the member that stage work on the delivery has ended
// (the router is about to publish its forward): its slot is free, and the
// member pulls its next message now. The delivery stays unsettled (the
// server redelivers it if the member dies) until Ack, Reject or Release;
// its forward, published on the same Conn, goes on in the background and
// holds its Ack back until the PubAck (see publisher.Publish).
func (s *settler) WorkEnded() {
	if id, ok := EnvelopeID(s.m.Data); ok && s.k.forwardTo != "" {
		id += "." + s.k.forwardTo
		if s.k.c.expectForward(id, s) {
			s.id = id
		}
	}
	s.free()
}

func (s *settler) free() {
	if !s.freed.CompareAndSwap(false, true) {
		return
	}
	s.k.mu.Lock()
	s.k.working--
	s.k.mu.Unlock()
	s.k.refill()
}

// inBackground marks s's forward as published in the background.
func (s *settler) inBackground() {
	s.fmu.Lock()
	s.background = true
	s.fmu.Unlock()
}

// forwarded is the end of s's forward published in the background: the
// settlement decided meanwhile is sent now, an Ack turned into a Nak if the
// forward failed (the message is then delivered again and forwarded
// again).
func (s *settler) forwarded(err error) {
	s.fmu.Lock()
	s.fwdDone, s.fwdErr = true, err
	what, body := s.what, s.body
	s.fmu.Unlock()
	if err != nil && s.k.c.stopping.Err() == nil {
		s.k.c.faults.Fault(fmt.Errorf("js transport: forward from %s: %w", s.k.name, err))
	}
	if body == nil {
		return // not decided yet: settle sends it
	}
	if err != nil && what == "ack" {
		what, body = "nak", nakBody
	}
	_ = s.send(what, body)
}

func (s *settler) settle(what string, body []byte) error {
	if !s.done.CompareAndSwap(false, true) {
		return fmt.Errorf("js transport: %s: delivery already settled", what)
	}
	if s.id != "" {
		s.k.c.unexpectForward(s.id, s) // no forward came
	}
	s.fmu.Lock()
	if s.background && !s.fwdDone {
		s.what, s.body = what, body // forwarded sends it
		s.fmu.Unlock()
		return nil
	}
	if s.background && s.fwdErr != nil && what == "ack" {
		what, body = "nak", nakBody
	}
	s.fmu.Unlock()
	return s.send(what, body)
}

// send settles s with the server.
func (s *settler) send(what string, body []byte) error {
	s.sent.Store(true)
	err := s.k.c.nc.Publish(s.m.Reply, body)
	s.k.mu.Lock()
	delete(s.k.unsettled, s)
	s.k.mu.Unlock()
	s.free()
	if err != nil {
		return fmt.Errorf("js transport: %s on %s: %w", what, s.k.name, err)
	}
	return nil
}

// Ack implements transport.Settler.
func (s *settler) Ack() error { return s.settle("ack", ackBody) }

// Reject implements transport.Settler: Term, so the server never delivers
// the message again, with the reason.
func (s *settler) Reject(reason error) error {
	body := termBody
	if reason != nil {
		r := reason.Error()
		if len(r) > 200 {
			r = r[:200]
		}
		body = append(append(append([]byte(nil), termBody...), ' '), r...)
	}
	return s.settle("term", body)
}

// Release implements transport.Settler: Nak, for another delivery now.
func (s *settler) Release() error { return s.settle("nak", nakBody) }
