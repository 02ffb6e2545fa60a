package transport

import "sync"

// Forwards pairs a delivery whose stage work has ended (the router's
// WorkEnded) with the publish of its forward, by the forward's message ID,
// so a transport can publish the forward in the background and hold the
// delivery's ack until the broker has accepted it (JetStream's PubAck,
// RabbitMQ's confirm). The zero value is ready to use; safe for
// concurrent use.
type Forwards[S comparable] struct {
	mu sync.Mutex
	m  map[string]S
}

// Expect registers s as the delivery whose forward will carry id; false
// if another delivery is registered for it (a redelivery of a message
// still being forwarded).
func (f *Forwards[S]) Expect(id string, s S) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[id]; ok {
		return false
	}
	if f.m == nil {
		f.m = make(map[string]S)
	}
	f.m[id] = s
	return true
}

// Take removes and returns the delivery registered for id, if any.
func (f *Forwards[S]) Take(id string) (S, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[id]
	if ok {
		delete(f.m, id)
	}
	return s, ok
}

// Drop removes s's registration under id, if it is still s's.
func (f *Forwards[S]) Drop(id string, s S) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.m[id]; ok && cur == s {
		delete(f.m, id)
	}
}
