package worker

// CheckURL reports a NATS server URL, or comma-separated list of them, that
// nats.go could never connect to (an empty entry, a scheme other than nats,
// tls, ws or wss, no host): a usage error rather than a connection failure.
func CheckURL(raw string) error { return checkURL(raw) }
