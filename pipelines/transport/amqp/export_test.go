package amqp

import "github.com/natspipe/natspipe/pipelines/transport"

// HoldConfirms makes every confirm of c's publishers wait until gate is
// closed (or c closes). Call it before c's first Publisher.
func HoldConfirms(c transport.Conn, gate <-chan struct{}) { c.(*Conn).confirmGate = gate }

// ViaLookahead reports whether d came on its member's lookahead consumer.
func ViaLookahead(d transport.Delivery) bool { return d.Settler.(*settler).l.ahead }
