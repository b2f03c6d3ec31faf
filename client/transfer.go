package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// Phases of an export or an import, as Progress.Phase names them.
const (
	PhaseExport = "export" // ExportTenant: pages read from the cluster and written
	PhaseVerify = "verify" // ImportTenant: the file read and checked, nothing written yet
	PhaseLoad   = "load"   // ImportTenant: records written to the cluster
)

// Progress reports how far an export or an import has got. Keys and Bytes
// (keys plus values) count what the phase has done so far; TotalKeys and
// TotalBytes what it expects to do in all, zero when unknown (they are the
// server's usage figures while exporting and while verifying, and exact
// while loading).
type Progress struct {
	Phase      string
	Keys       uint64
	Bytes      uint64
	TotalKeys  uint64
	TotalBytes uint64
}

// ExportSummary describes a finished export.
type ExportSummary struct {
	Header ExportHeader // what the file's header holds
	Keys   uint64       // records written
	Bytes  uint64       // bytes of their keys and values
}

// ImportSummary describes an import, finished or not.
type ImportSummary struct {
	Tenant  string       // the tenant imported into
	Created bool         // the import created it
	Header  ExportHeader // the file's header
	Keys    uint64       // records written to the tenant
	Bytes   uint64       // bytes of their keys and values
}

// ExportTenant writes a consistent snapshot of the tenant to w in the export
// format (see ExportWriter): its record (state, limits, labels) and every
// key and value as of one instant, fetched page by page from a snapshot the
// node pins for the export. progress, if not nil, is called after each page.
// It needs an operator token.
//
// The snapshot lives on the node that served the first page. If that node
// loses leadership or restarts, or more than a minute passes between pages,
// the export fails with an error matching ErrInvalidArgument ("export
// cursor not found") and must be started again; what was written to w is
// then not a valid file.
func (db *DB) ExportTenant(ctx context.Context, name string, w io.Writer, progress func(Progress)) (*ExportSummary, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty tenant name", ErrInvalidName)
	}
	req := wire.Request{Op: wire.OpExportTenant, Name: name, Limit: DefaultPageSize}
	var resp wire.Response
	if err := db.do(ctx, &req, &resp, true); err != nil {
		return nil, err
	}
	if resp.Tenant == nil {
		return nil, fmt.Errorf("%w: export-tenant answer without a tenant", ErrInternal)
	}
	ti := tenantInfoOf(resp.Tenant)
	sum := &ExportSummary{Header: ExportHeader{
		Name: ti.Name, ID: ti.ID, State: ti.State, CreatedAt: ti.CreatedAt, ExportedAt: time.Now().UTC(),
		Limits: ti.Limits, Labels: maps.Clone(ti.Labels), Keys: ti.Usage.Keys, LogicalBytes: ti.Usage.LogicalBytes,
	}}
	// The trail goes with the tenant. A server that predates it answers
	// with an error: the file then carries none.
	if evs, err := db.TenantAudit(ctx, name, nil); err == nil {
		sum.Header.Audit, sum.Header.AuditDropped = fitAudit(evs, auditHeaderBudget)
	}
	ew, err := NewExportWriter(w, &sum.Header)
	if err != nil {
		return nil, err
	}
	for page := 1; ; page++ {
		for _, kv := range resp.KVs {
			if err := ew.Add(kv.Key, kv.Value); err != nil {
				if errors.Is(err, ErrInvalidArgument) {
					err = fmt.Errorf("%w: export page %d: %w", ErrInternal, page, err)
				}
				return nil, err
			}
		}
		if progress != nil {
			progress(Progress{Phase: PhaseExport, Keys: ew.Records(), Bytes: ew.Bytes(),
				TotalKeys: sum.Header.Keys, TotalBytes: sum.Header.LogicalBytes})
		}
		if !resp.More {
			break
		}
		if resp.Next == "" || len(resp.KVs) == 0 {
			return nil, fmt.Errorf("%w: export page %d has more to come but no cursor or no pairs", ErrInternal, page)
		}
		next := append(bytes.Clone(resp.KVs[len(resp.KVs)-1].Key), 0)
		req = wire.Request{Op: wire.OpExportTenant, Name: name, Cursor: resp.Next, Key: next, Limit: DefaultPageSize}
		resp = wire.Response{}
		if err := db.do(ctx, &req, &resp, true); err != nil {
			if errors.Is(err, ErrInvalidArgument) {
				return nil, fmt.Errorf("export of %s, page %d: %w (the export's snapshot is gone: the leader changed or restarted, or a minute passed between pages; start again)", name, page+1, err)
			}
			return nil, fmt.Errorf("export of %s, page %d: %w", name, page+1, err)
		}
	}
	if err := ew.Close(); err != nil {
		return nil, err
	}
	sum.Keys, sum.Bytes = ew.Records(), ew.Bytes()
	return sum, nil
}

// auditHeaderBudget is what an export header may spend on the audit trail,
// of its 1 MiB.
const auditHeaderBudget = 768 << 10

// fitAudit keeps the newest events whose JSON fits in budget bytes.
func fitAudit(evs []AuditEvent, budget int) ([]AuditEvent, uint64) {
	size, i := 0, len(evs)
	for i > 0 {
		b, _ := json.Marshal(auditToJSON(evs[i-1 : i]))
		if size+len(b) > budget {
			break
		}
		size += len(b)
		i--
	}
	return evs[i:], uint64(i)
}

// importAuditChunk is how many events one import request carries.
const importAuditChunk = 100

// importAudit records the file's trail in tenant name's trail, after what
// the trail holds (a new tenant's create, or an existing empty tenant's own
// history), then an import event naming the source. A file without a
// trail (an earlier release's) still gets its import event.
func (db *DB) importAudit(ctx context.Context, name string, h *ExportHeader) error {
	for start := 0; ; start += importAuditChunk {
		end := min(start+importAuditChunk, len(h.Audit))
		body, err := json.Marshal(importAuditJSON{
			SourceName: h.Name, SourceID: h.ID, Dropped: h.AuditDropped,
			Events: auditToJSON(h.Audit[start:end]), Last: end == len(h.Audit),
		})
		if err != nil {
			return err
		}
		var resp wire.Response
		req := wire.Request{Op: wire.OpTenantAudit, Name: name, State: "import", Value: body}
		if err := db.do(ctx, &req, &resp, false); err != nil {
			if len(h.Audit) == 0 && errors.Is(err, ErrBadRequest) {
				return nil // a node of a release without audit imports: nothing to carry
			}
			return err
		}
		if end == len(h.Audit) {
			return nil
		}
	}
}

// importAuditJSON is the body of an OpTenantAudit "import" request.
type importAuditJSON struct {
	SourceName string      `json:"source_name"`
	SourceID   uint64      `json:"source_id"`
	Dropped    uint64      `json:"dropped,omitempty"`
	Events     []auditJSON `json:"events"`
	Last       bool        `json:"last,omitempty"`
}

// Import batches: at most this many records, and about this many bytes.
const (
	importBatchKeys  = 1000
	importBatchBytes = 1 << 20
	importRetries    = 5 // attempts of one batch after a commit of unknown outcome
)

// ImportTenant loads an export file (see ExportWriter) from r into the
// tenant name, which may differ from the name in the file.
//
// It first reads all of r into a temporary file (in os.TempDir) and
// verifies it: its structure, its record count and its checksum. Nothing is
// written to the cluster unless the whole file is sound; a corrupt file is
// an error matching ErrCorruptExport.
//
// If no tenant has that name, it is created with the file's limits and
// labels, loaded, and then given the file's state. An existing tenant must
// be active and empty (else the error matches ErrTenantNotEmpty); it keeps
// its own limits, labels and state. Either way the tenant's key and byte
// limits must leave room for the file's contents (else ErrQuotaExceeded).
// Records are written in atomic batches of at most 1,000 keys and about
// 1 MiB; a batch that is rate limited is retried after the server's hint,
// and one whose outcome is unknown is sent again (sets of the file's keys
// are idempotent). progress, if not nil, is called as the file is verified
// and after each batch. It needs an operator token.
//
// An import that fails after writing has begun leaves what it wrote: the
// error says so, and the summary (returned with the error once a tenant has
// been chosen) tells which tenant, whether the import created it and how
// many keys it holds. Nothing is deleted on the caller's behalf. The check
// that an existing tenant is empty happens before loading: writes by others
// while the import runs are not detected.
func (db *DB) ImportTenant(ctx context.Context, name string, r io.Reader, progress func(Progress)) (*ImportSummary, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty tenant name", ErrInvalidName)
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	spool, err := os.CreateTemp("", "tenantkv-import-*.tkvx")
	if err != nil {
		return nil, fmt.Errorf("tenantkv: import: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()

	// First pass: copy r to the spool file while verifying it.
	bw := bufio.NewWriterSize(spool, 256<<10)
	h, keys, nbytes, err := verifyExport(io.TeeReader(r, bw), progress)
	if err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("tenantkv: import: spool: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("tenantkv: import: spool: %w", err)
	}

	sum := &ImportSummary{Tenant: name, Header: h}
	existing, err := db.importTarget(ctx, name, &h, keys, nbytes)
	if err != nil {
		return nil, err
	}
	if existing == nil {
		_, err := db.CreateTenant(ctx, name, &TenantConfig{
			MaxBytes: h.Limits.MaxBytes, MaxKeys: h.Limits.MaxKeys, OpsPerSec: h.Limits.OpsPerSec,
			Burst: h.Limits.Burst, MaxConcurrent: h.Limits.MaxConcurrent, MaxWatches: h.Limits.MaxWatches,
			MaxConnections: h.Limits.MaxConnections, Labels: h.Labels,
		})
		if err != nil {
			if errors.Is(err, ErrCommitUnknown) {
				return nil, fmt.Errorf("import: creating tenant %s: %w (it may exist now, empty)", name, err)
			}
			return nil, fmt.Errorf("import: creating tenant %s: %w", name, err)
		}
		sum.Created = true
	}

	// Second pass: load the verified copy.
	if err := db.loadExport(ctx, db.Tenant(name), spool, sum, keys, nbytes, progress); err != nil {
		return sum, partialImport(sum, keys, err)
	}
	// The lifecycle's deadlines are not in the file: an imported trial
	// tenant is active, and a cancelled one suspended (no data is purged
	// behind the importer's back); the operator moves them on.
	state := h.State
	if state == StateCancelled {
		state = StateSuspended
	}
	if err := db.importAudit(ctx, name, &h); err != nil {
		return sum, fmt.Errorf("import: all %d keys loaded into tenant %s, but recording the import in its audit trail failed: %w",
			sum.Keys, name, err)
	}
	if sum.Created && state != StateActive && state != StateTrial {
		if _, err := db.UpdateTenant(ctx, name, &TenantUpdate{State: state}); err != nil {
			return sum, fmt.Errorf("import: all %d keys loaded into new tenant %s, but setting its state to %s failed: %w",
				sum.Keys, name, state, err)
		}
	}
	return sum, nil
}

// verifyExport reads a whole export file from r, checking everything, and
// returns its header and the number and bytes of its records.
func verifyExport(r io.Reader, progress func(Progress)) (ExportHeader, uint64, uint64, error) {
	er, err := NewExportReader(r)
	if err != nil {
		return ExportHeader{}, 0, 0, err
	}
	h := er.Header()
	report := func() {
		progress(Progress{Phase: PhaseVerify, Keys: er.Records(), Bytes: er.Bytes(),
			TotalKeys: h.Keys, TotalBytes: h.LogicalBytes})
	}
	for {
		_, _, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ExportHeader{}, 0, 0, err
		}
		if er.Records()%importBatchKeys == 0 {
			report()
		}
	}
	report()
	return h, er.Records(), er.Bytes(), nil
}

// importTarget returns the existing tenant name after checking that it may
// receive the file, or nil if it does not exist and may be created.
func (db *DB) importTarget(ctx context.Context, name string, h *ExportHeader, keys, nbytes uint64) (*TenantInfo, error) {
	ti, err := db.TenantInfo(ctx, name)
	limits := h.Limits
	switch {
	case errors.Is(err, ErrTenantNotFound):
		ti = nil
	case err != nil:
		return nil, err
	default:
		if ti.State != StateActive && ti.State != StateTrial {
			return nil, fmt.Errorf("%w: cannot import into %s: an import needs an active tenant", stateError(ti.State), name)
		}
		for _, err := range db.Tenant(name).Range(ctx, KeyRange{}, &RangeOptions{Limit: 1}) {
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %s holds keys: an import needs a new or empty tenant", ErrTenantNotEmpty, name)
		}
		limits = ti.Limits
	}
	if limits.MaxKeys != 0 && keys > limits.MaxKeys {
		return nil, fmt.Errorf("%w: the file holds %d keys, tenant %s may store %d", ErrQuotaExceeded, keys, name, limits.MaxKeys)
	}
	if limits.MaxBytes != 0 && nbytes > limits.MaxBytes {
		return nil, fmt.Errorf("%w: the file holds %d bytes, tenant %s may store %d", ErrQuotaExceeded, nbytes, name, limits.MaxBytes)
	}
	return ti, nil
}

func stateError(state string) error {
	switch state {
	case StateSuspended, StateReadOnly:
		return ErrTenantReadOnly
	case StateLocked:
		return ErrTenantLocked
	}
	return fmt.Errorf("%w: tenant state %q", ErrInvalidArgument, state)
}

// loadExport writes the records of the verified file r to t in batches.
func (db *DB) loadExport(ctx context.Context, t *Tenant, r io.Reader, sum *ImportSummary, total, totalBytes uint64, progress func(Progress)) error {
	er, err := NewExportReader(r)
	if err != nil {
		return fmt.Errorf("re-reading the verified file: %w", err)
	}
	b := t.NewBatch()
	var pending uint64 // bytes of keys and values in b
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		if err := commitImportBatch(ctx, b); err != nil {
			return err
		}
		sum.Keys += uint64(b.Len())
		sum.Bytes += pending
		b.Reset()
		pending = 0
		progress(Progress{Phase: PhaseLoad, Keys: sum.Keys, Bytes: sum.Bytes, TotalKeys: total, TotalBytes: totalBytes})
		return nil
	}
	for {
		k, v, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("re-reading the verified file: %w", err)
		}
		if b.Len() > 0 && (b.Len() >= importBatchKeys || pending+uint64(len(k)+len(v)) > importBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		b.Set(k, v)
		pending += uint64(len(k) + len(v))
	}
	return flush()
}

// commitImportBatch commits b, waiting out rate limits and sending it again
// after an unknown outcome: a batch of sets is idempotent.
func commitImportBatch(ctx context.Context, b *Batch) error {
	unknown := 0
	for {
		err := b.Commit(ctx)
		var se *Error
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case errors.Is(err, ErrRateLimited):
			d := 10 * time.Millisecond
			if errors.As(err, &se) && se.RetryAfter > d {
				d = min(se.RetryAfter, time.Second)
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err
			}
		case errors.Is(err, ErrCommitUnknown) && unknown < importRetries:
			unknown++
		default:
			return err
		}
	}
}

// partialImport explains an import that failed after writing began.
func partialImport(sum *ImportSummary, total uint64, err error) error {
	if sum.Created {
		return fmt.Errorf("import stopped after %d of %d keys: tenant %s was created by this import and holds a partial copy; delete it before importing again: %w",
			sum.Keys, total, sum.Tenant, err)
	}
	return fmt.Errorf("import stopped after %d of %d keys: tenant %s now holds a partial copy; empty it before importing again: %w",
		sum.Keys, total, sum.Tenant, err)
}
