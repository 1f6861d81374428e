//go:build !linux

package metrics

// processFamilies returns no families: the process_* figures are read from
// /proc, which only Linux has, and a made-up zero would mislead.
func processFamilies() []Collector { return nil }
