package keyspace

import "fmt"

// MaxNameLen is the longest tenant name, as for a DNS label.
const MaxNameLen = 63

// ValidateName checks that name is a valid tenant name: 1 to 63 characters of
// a-z, 0-9 and '-', neither starting nor ending with '-'.
func ValidateName(name string) error {
	if len(name) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d characters, limit %d", ErrInvalidName, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-':
			if i == 0 || i == len(name)-1 {
				return fmt.Errorf("%w: %q may not start or end with '-'", ErrInvalidName, name)
			}
		default:
			return fmt.Errorf("%w: %q: only a-z, 0-9 and '-' are allowed", ErrInvalidName, name)
		}
	}
	return nil
}
