package command

import (
	"errors"
	"testing"
)

// Every type the decoder knows, and the batch entry, has a format no higher
// than MaxFormat; no other type has one. The types of format 1 are exactly
// those releases before the format gate wrote (1 to 12), and MaxFormat is
// the format of some type, so that a build never claims a format it cannot
// write.
func TestFormatOfEveryType(t *testing.T) {
	highest := Format(0)
	for v := range 256 {
		typ := Type(v)
		f := FormatOf(typ)
		known := newCommand(typ) != nil || typ == TypeBatch
		switch {
		case known && (f == 0 || f > MaxFormat):
			t.Errorf("type %d: format %d, want 1 to %d", v, f, MaxFormat)
		case !known && f != 0:
			t.Errorf("type %d is unknown to the decoder but has format %d", v, f)
		}
		if (v >= 1 && v <= 12) != (f == Format1) {
			t.Errorf("type %d: format %d; format 1 is types 1 to 12", v, f)
		}
		highest = max(highest, f)
	}
	if highest != MaxFormat {
		t.Errorf("highest format of a type is %d, MaxFormat %d", highest, MaxFormat)
	}
	if FormatOf(TypeSetFormat) != Format2 || Gated(TypeSetFormat) {
		t.Error("SetFormat is of format 2 and not gated (it is the gate)")
	}
	for v := 1; v <= 12; v++ {
		if Gated(Type(v)) {
			t.Errorf("type %d of format 1 is gated", v)
		}
	}
}

func TestSetFormatValidate(t *testing.T) {
	if err := (&SetFormat{}).Validate(); !errors.Is(err, ErrBadCommand) {
		t.Errorf("SetFormat 0: %v, want ErrBadCommand", err)
	}
	// Above MaxFormat is valid: the state machine stops on it instead.
	for _, v := range []uint32{1, 2, uint32(MaxFormat) + 1, 1 << 31} {
		if err := (&SetFormat{Version: v}).Validate(); err != nil {
			t.Errorf("SetFormat %d: %v", v, err)
		}
	}
}
