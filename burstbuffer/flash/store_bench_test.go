package flash

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkStoresPut is a durable Put of a 5 KiB shard on 1 and 3 stores
// at once (a small fsync'd stripe's copies), with and without
// preallocated segments: the fdatasync cost of the fsync-each path.
func BenchmarkStoresPut(b *testing.B) {
	for _, pre := range []bool{false, true} {
		for _, n := range []int{1, 3} {
			b.Run(fmt.Sprintf("stores=%d/prealloc=%v", n, pre), func(b *testing.B) {
				var sts []*Store
				for i := 0; i < n; i++ {
					st, err := OpenStore(b.TempDir(), StoreOptions{SegmentSize: 16 << 20, Preallocate: pre})
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					sts = append(sts, st)
				}
				p := make([]byte, 5000)
				ctx := context.Background()
				put := func(i int) {
					var wg sync.WaitGroup
					for _, st := range sts {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := st.Put(ctx, uint64(i+1), 0, p); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
				}
				// Warm up: enough syncs for a spare, and time to fill it.
				for i := 0; i < spareAfterSyncs+1; i++ {
					put(1<<40 + i)
				}
				time.Sleep(300 * time.Millisecond)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					put(i)
				}
			})
		}
	}
}
