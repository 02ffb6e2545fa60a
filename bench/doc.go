// Package bench holds natspipe's cross-variant benchmarks: the study's suite
// with P0..P4 side by side (BenchmarkSuite, names carry impl=p0..p4 so
// `benchstat -col /impl` lays them out), the messaging-overhead comparison
// against a raw nats.go hop (BenchmarkOverhead), and open-loop tests. The
// regression gate library is bench/gate.
package bench
