package runtime

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag value of a number of bytes, written with an optional
// unit: 512, 64KiB, 256MiB, 2GiB (powers of 1024) or 500MB, 1GB (powers of
// 1000). Case does not matter; a space before the unit is allowed.
type byteSize struct{ n *int64 }

var byteUnits = []struct {
	suffix string
	scale  int64
}{
	// Longest first, so that "kib" is not read as "b".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseByteSize parses a byteSize.
func parseByteSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	scale := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, scale = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.scale
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(scale) >= 1<<63 {
		return 0, fmt.Errorf("%q is not a size: write bytes with an optional unit, as 256MiB, 1GiB or 500MB", s)
	}
	return int64(v * float64(scale)), nil
}

// formatByteSize writes n with the largest binary unit that divides it.
func formatByteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.scale == 0 {
			return strconv.FormatInt(n/u.scale, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func (b byteSize) String() string {
	if b.n == nil {
		return ""
	}
	return formatByteSize(*b.n)
}

func (b byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b.n = n
	return nil
}

func (b byteSize) Get() any { return *b.n }
