// Package loadtest holds ExfilGuard's load, soak and abuse tests. It has
// no API: its tests build the real binary, start it on loopback against
// httptest origins and drive it as clients would, measuring latency from
// the outside and the process's CPU time, memory, file descriptors and
// goroutines from /proc and /metrics.
//
// By default (make test) the load generator runs a short smoke pass and
// every abuse test runs in a shortened form of a few seconds. Flags widen
// them:
//
//	go test ./proxy/loadtest -run '^TestLoad$' -v -load 30s          (make load)
//	go test ./proxy/loadtest -v -soak 10m -full                      (make soak)
//	-load.concurrency N   client connections (default 48)
//	-load.mix LIST        workloads and weights, e.g. plain=1 or plain=4,churn=1
//
// The tests read /proc and run the binary under /bin/sh for a lowered
// open-file limit, so most of them need Linux.
package loadtest
