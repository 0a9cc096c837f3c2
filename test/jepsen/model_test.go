package jepsen

import (
	"errors"
	"testing"

	"github.com/anishathalye/porcupine"
)

// history builds a history by hand: ops with call/return times; ret < 0
// is an operation with unknown outcome.
type hop struct {
	call, ret int64
	in        Input
	out       Output
}

func mk(hs ...hop) []porcupine.Operation {
	r := NewRecorder()
	for i, h := range hs {
		if h.ret < 0 {
			r.Unknown(i, h.call, h.in, errors.New("timeout"))
			continue
		}
		r.add(porcupine.Operation{ClientId: i, Input: h.in, Call: h.call, Output: h.out, Return: h.ret})
	}
	return r.Operations()
}

func put(k, v string) Input { return Input{Kind: Put, Key: k, Value: v} }
func get(k string) Input    { return Input{Kind: Get, Key: k} }
func del(k string) Input    { return Input{Kind: Delete, Key: k} }
func val(v string) Output   { return Output{Present: true, Value: v} }

var absent = Output{}

func TestModel(t *testing.T) {
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential put get delete get", mk(
			hop{0, 1, put("a", "1"), Output{}}, hop{2, 3, get("a"), val("1")},
			hop{4, 5, del("a"), Output{}}, hop{6, 7, get("a"), absent}), true},
		{"read of a value never written", mk(hop{0, 1, get("a"), val("x")}), false},
		{"stale read after an acknowledged put", mk(
			hop{0, 1, put("a", "1"), Output{}}, hop{2, 3, put("a", "2"), Output{}}, hop{4, 5, get("a"), val("1")}), false},
		{"read of a deleted value", mk(
			hop{0, 1, put("a", "1"), Output{}}, hop{2, 3, del("a"), Output{}}, hop{4, 5, get("a"), val("1")}), false},
		{"concurrent put may be seen or not", mk(
			hop{0, 10, put("a", "1"), Output{}}, hop{1, 2, get("a"), absent}, hop{3, 4, get("a"), val("1")}), true},
		{"no going back once a concurrent put was seen", mk(
			hop{0, 10, put("a", "1"), Output{}}, hop{1, 2, get("a"), val("1")}, hop{3, 4, get("a"), absent}), false},
		// An unknown put may take effect any time after its call...
		{"unknown put seen much later", mk(
			hop{0, -1, put("a", "1"), Output{}}, hop{5, 6, get("a"), absent}, hop{100, 101, get("a"), val("1")}), true},
		// ...or never.
		{"unknown put never seen", mk(
			hop{0, -1, put("a", "1"), Output{}}, hop{5, 6, get("a"), absent}), true},
		// But not before its call.
		{"unknown put seen before its call", mk(
			hop{0, 1, get("a"), val("1")}, hop{5, -1, put("a", "1"), Output{}}), false},
		// And once only: after it was seen and overwritten it cannot come back.
		{"unknown put seen, overwritten, seen again", mk(
			hop{0, -1, put("a", "1"), Output{}}, hop{2, 3, get("a"), val("1")}, hop{4, 5, put("a", "2"), Output{}},
			hop{6, 7, get("a"), val("1")}), false},
		{"unknown delete", mk(
			hop{0, 1, put("a", "1"), Output{}}, hop{2, -1, del("a"), Output{}}, hop{3, 4, get("a"), val("1")}, hop{5, 6, get("a"), absent}), true},
		{"keys are independent", mk(
			hop{0, 1, put("a", "1"), Output{}}, hop{2, 3, get("b"), absent}, hop{4, 5, get("a"), val("1")}), true},
	}
	for _, c := range cases {
		res, _, _, err := Check(c.ops, nil, 0, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (res == porcupine.Ok) != c.ok {
			t.Errorf("%s: %s, want linearizable=%v", c.name, res, c.ok)
		}
	}
}
