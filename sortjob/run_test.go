package sortjob

import "testing"

func TestPartNamesSortInPartitionOrder(t *testing.T) {
	for _, c := range []struct {
		i, n int
		want string
	}{{0, 4, "part-00000"}, {99999, 100000, "part-99999"}, {7, 100001, "part-000007"}, {100000, 100001, "part-100000"}} {
		if got := PartName(c.i, c.n); got != c.want {
			t.Errorf("PartName(%d, %d) = %s, want %s", c.i, c.n, got, c.want)
		}
	}
}
