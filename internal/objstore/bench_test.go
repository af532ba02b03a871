package objstore

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/weirstream/weir/internal/s3dev"
)

// BenchmarkPut uploads one file to each kind of store; the bytes a second
// are the file's.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		for _, kind := range []string{"local", "s3-memory"} {
			b.Run(fmt.Sprintf("%s/%dMiB", kind, size>>20), func(b *testing.B) {
				var st Store
				if kind == "local" {
					var err error
					if st, err = Open(b.Context(), filepath.Join(b.TempDir(), "store"), Options{}); err != nil {
						b.Fatal(err)
					}
				} else {
					srv := s3dev.StartTest(b, "")
					srv.SetEnv(b)
					var err error
					if st, err = Open(b.Context(), "s3://"+testBucket, Options{CreateBucket: true, Logger: quiet}); err != nil {
						b.Fatal(err)
					}
				}
				src, _ := writeFile(b, rand.New(rand.NewPCG(1, 2)), size)
				b.SetBytes(int64(size))
				i := 0
				for b.Loop() {
					if _, err := st.Put(b.Context(), fmt.Sprintf("f%d", i%4), src); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
