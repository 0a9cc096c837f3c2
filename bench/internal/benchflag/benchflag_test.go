package benchflag

import (
	"slices"
	"testing"
)

func TestSizes(t *testing.T) {
	eg := [2]string{"1KiB", "64KiB"}
	if got, err := Sizes(" 4KiB, 1MiB ,,512B", 16<<20, eg, ""); err != nil || !slices.Equal(got, []int64{4 << 10, 1 << 20, 512}) {
		t.Errorf("Sizes = %v, %v", got, err)
	}
	for _, tc := range []struct{ in, why, want string }{
		{"1024", "", `"1024" has no unit: give sizes such as 1KiB or 64KiB (or 512B)`},
		{"big", "", `"big" is not a size such as 1KiB or 64KiB`},
		{"0B", "", `"0B": objects need at least 1 byte`},
		{"32MiB", "", `"32MiB" is over 16 MiB`},
		{"32MiB", "multipart", `"32MiB" is over 16 MiB (multipart)`},
		{"1KiB,1024B", "", `"1024B" given twice`},
		{" , ", "", `no sizes in " , ": give sizes such as 1KiB,64KiB`},
	} {
		if _, err := Sizes(tc.in, 16<<20, eg, tc.why); err == nil || err.Error() != tc.want {
			t.Errorf("Sizes(%q): %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestTargets(t *testing.T) {
	all := []string{"ours", "peer"}
	if got, err := Targets(" Peer ,ours,", all); err != nil || !slices.Equal(got, []string{"peer", "ours"}) {
		t.Errorf("Targets = %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"other":     `unknown target "other": use ours, peer`,
		"ours,OURS": `"ours" given twice`,
		",":         `no targets in ",": use ours, peer`,
	} {
		if _, err := Targets(in, all); err == nil || err.Error() != want {
			t.Errorf("Targets(%q): %v, want %s", in, err, want)
		}
	}
}
