package amqp

import "github.com/natspipe/natspipe/pipelines/transport"

// HoldConfirms makes every confirm of c's publishers wait until gate is
// closed (or c closes). Call it before c's first Publisher.
func HoldConfirms(c transport.Conn, gate <-chan struct{}) { c.(*Conn).confirmGate = gate }
