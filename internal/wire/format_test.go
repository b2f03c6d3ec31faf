package wire

import "testing"

// The answer to OpFormat carries MaxFormat; the fast encoder, which does
// not write it, must leave such an answer to the library. Cluster status
// carries the cluster format and each member's.
func TestFormatAnswerRoundTrip(t *testing.T) {
	if !OpFormat.Known() || OpFormat.String() != "format" {
		t.Fatalf("OpFormat: known %v, name %q", OpFormat.Known(), OpFormat)
	}
	for _, in := range []Response{
		{ID: 1, MaxFormat: 2},
		{ID: 2, Cluster: &ClusterStatus{NodeID: "n1", Format: 2, Members: []Member{{ID: "n1", MaxFormat: 3}, {ID: "n2"}}}},
	} {
		b, err := AppendResponse(nil, &in)
		if err != nil {
			t.Fatal(err)
		}
		var out Response
		if err := DecodeResponse(b, &out); err != nil {
			t.Fatal(err)
		}
		if out.MaxFormat != in.MaxFormat {
			t.Errorf("MaxFormat %d, want %d", out.MaxFormat, in.MaxFormat)
		}
		if in.Cluster != nil {
			if out.Cluster == nil || out.Cluster.Format != 2 || out.Cluster.Members[0].MaxFormat != 3 || out.Cluster.Members[1].MaxFormat != 0 {
				t.Errorf("cluster status %+v", out.Cluster)
			}
		}
	}
	// A request for it is a bare op: what an older node reads as a first
	// request that is not a hello.
	b, err := AppendRequest(nil, &Request{ID: 7, Op: OpFormat})
	if err != nil {
		t.Fatal(err)
	}
	var req Request
	if err := DecodeRequest(b, &req); err != nil || req.Op != OpFormat || req.ID != 7 {
		t.Fatalf("request %+v, %v", req, err)
	}
}
