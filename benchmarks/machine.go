package benchmarks

import (
	"os"
	"strings"
)

// CPUModel returns the processor's model name from /proc/cpuinfo, or
// "unknown CPU" where that file does not say, for the machine line every
// benchmark prints beside its numbers.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
