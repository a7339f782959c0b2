package control

import (
	"context"
	"encoding/json"
	"testing"
)

// FuzzDispatch feeds arbitrary request lines to the server: every line gets either data
// or an error message, never a panic.
func FuzzDispatch(f *testing.F) {
	f.Add([]byte(`{"verb":"show-port","args":{"name":"inside"}}`))
	f.Add([]byte(`{"verb":"show-port","args":{"name":7}}`))
	f.Add([]byte(`{"verb":"nope"}`))
	f.Add([]byte(`{"args":null}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"verb":"watch","args":{"kind":"vrrp"}}`))
	f.Add([]byte(`{"verb":"watch","args":{"kind":1}}`))
	s := NewServer("unused", nil)
	s.Handle(VerbShowPort, showPort)
	s.HandleStream(VerbWatch, NewEvents(nil).Watch)
	f.Fuzz(func(t *testing.T, line []byte) {
		r, stream := s.dispatch(context.Background(), line)
		if stream != nil {
			stream.Close()
			if !r.OK || len(r.Data) != 0 {
				t.Fatalf("stream opened with response %+v", r)
			}
			return
		}
		if r.OK == (r.Error != "") {
			t.Fatalf("response %+v is neither data nor an error", r)
		}
		if r.OK && !json.Valid(r.Data) {
			t.Fatalf("invalid data %q", r.Data)
		}
	})
}
