package operators

import (
	"slices"
	"strings"
	"testing"

	"github.com/weirstream/weir/state"
)

// TestListCodecAppendsInPlace checks that encoding a list (a TopNPerKey
// ranking, a window's records) allocates nothing once dst has room: it was
// a scratch buffer per call, a quarter of Nexmark q19's allocations. It
// also round-trips elements on both sides of the one-byte length prefix.
func TestListCodecAppendsInPlace(t *testing.T) {
	c := listCodec[string]{elems: state.String}
	l := []string{"", "a", strings.Repeat("b", 127), strings.Repeat("c", 128), strings.Repeat("d", 20000)}
	dst := make([]byte, 0, 1<<16)
	if allocs := testing.AllocsPerRun(100, func() { dst = c.Append(dst[:0], l) }); allocs != 0 {
		t.Errorf("Append allocated %.1f times a call into a buffer with room, want 0", allocs)
	}
	got, err := c.Decode(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, l) {
		t.Errorf("round trip changed the list: got lengths %v", lengths(got))
	}
}

func lengths(l []string) []int {
	n := make([]int, len(l))
	for i, s := range l {
		n[i] = len(s)
	}
	return n
}
