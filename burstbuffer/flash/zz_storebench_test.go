package flash

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func BenchmarkThreeStoresPut(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var sts []*Store
			for i := 0; i < n; i++ {
				st, err := OpenStore(fmt.Sprintf("/var/tmp/sb/%d/%d", n, i), StoreOptions{SegmentSize: 64 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				sts = append(sts, st)
			}
			p := make([]byte, 1600)
			ctx := context.Background()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				for _, st := range sts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st.Put(ctx, uint64(i+1), 0, p)
					}()
				}
				wg.Wait()
			}
		})
	}
}
