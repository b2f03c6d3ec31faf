package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenantkv/tenantkv/internal/wire"
)

// The HTTP/JSON API, served under /v1/ on the HTTP address (docs/HTTP.md,
// docs/openapi.yaml). It is a second way in to the same data path, not a
// second data path: every HTTP request is translated into the wire.Request
// the binary protocol would send, authenticated with the same
// authenticate, and served by the same handle, so that limits, quotas,
// rate limits, per-tenant concurrency and bounded costs are the same by
// construction. The answer's code is turned into an HTTP status by one
// table (httpCodes).
//
// What a connection of the binary protocol is charged, an HTTP request is
// charged too: a tenant token's request holds one of the tenant's
// connection slots on the node while it runs (admitPrincipal), and its
// body and answer are charged to the node's memory budget before it runs.
// The HTTP listener counts its connections with the client listener's
// against MaxConnections (httpListener).

// Headers of the API.
const (
	// headerTenant may name the tenant; it must agree with the path and
	// the token.
	headerTenant = "X-Tenant-ID"
	// headerForwarded marks a request a follower forwarded to the leader,
	// with the follower's node ID: a request is forwarded at most once.
	headerForwarded = "X-Tenantkv-Forwarded"
	// headerVersion carries a key's version (GET) or a write's (PUT,
	// DELETE).
	headerVersion = "X-Tenantkv-Version"
)

// Bounds of one HTTP request.
const (
	// httpMaxHeaderBytes bounds the request line and headers: a key of
	// keyspace.MaxKeySize bytes percent-encoded (3 bytes each) fits in the
	// path, or in a query parameter.
	httpMaxHeaderBytes = 128 << 10
	// maxQueryBytes bounds a request's raw query: three keys (prefix or
	// start and end, and a cursor) percent-encoded, and a few numbers.
	maxQueryBytes = 100 << 10
	// httpRequestTimeout bounds a request other than a watch.
	httpRequestTimeout = 30 * time.Second
	// httpReadTimeout bounds reading a request's headers and body.
	httpReadTimeout = frameBodyTimeout
	// httpIdleTimeoutMax caps how long an idle keep-alive connection stays.
	httpIdleTimeoutMax = 2 * time.Minute
)

// httpCode is how one wire code reads over HTTP.
type httpCode struct {
	status int
	name   string
}

// httpCodes is the one table from the binary protocol's codes to HTTP
// statuses and the JSON body's code. A code missing here is an internal
// error. commit_unknown has a status of its own (504), so that a client
// that only looks at statuses still cannot take an unknown outcome for a
// failure or a success.
var httpCodes = map[wire.Code]httpCode{
	wire.CodeOK:                 {http.StatusOK, "ok"},
	wire.CodeInternal:           {http.StatusInternalServerError, "internal"},
	wire.CodeBadRequest:         {http.StatusBadRequest, "bad_request"},
	wire.CodeUnknownOp:          {http.StatusBadRequest, "bad_request"},
	wire.CodeVersionMismatch:    {http.StatusBadRequest, "bad_request"},
	wire.CodeInvalidArgument:    {http.StatusBadRequest, "invalid_argument"},
	wire.CodeInvalidKey:         {http.StatusBadRequest, "invalid_key"},
	wire.CodeInvalidRange:       {http.StatusBadRequest, "invalid_range"},
	wire.CodeInvalidName:        {http.StatusBadRequest, "invalid_name"},
	wire.CodeUnauthenticated:    {http.StatusUnauthorized, "unauthenticated"},
	wire.CodePermissionDenied:   {http.StatusForbidden, "permission_denied"},
	wire.CodeTenantReadOnly:     {http.StatusForbidden, "tenant_read_only"},
	wire.CodeTenantLocked:       {http.StatusForbidden, "tenant_locked"},
	wire.CodeNotFound:           {http.StatusNotFound, "not_found"},
	wire.CodeTenantNotFound:     {http.StatusNotFound, "tenant_not_found"},
	wire.CodeTokenNotFound:      {http.StatusNotFound, "token_not_found"},
	wire.CodeTenantExists:       {http.StatusConflict, "tenant_exists"},
	wire.CodeConflict:           {http.StatusConflict, "conflict"},
	wire.CodeTxTooOld:           {http.StatusConflict, "tx_too_old"},
	wire.CodeWatchTooOld:        {http.StatusGone, "watch_too_old"},
	wire.CodeKeyTooLarge:        {http.StatusRequestEntityTooLarge, "key_too_large"},
	wire.CodeValueTooLarge:      {http.StatusRequestEntityTooLarge, "value_too_large"},
	wire.CodeTxTooLarge:         {http.StatusRequestEntityTooLarge, "too_large"},
	wire.CodeFrameTooLarge:      {http.StatusRequestEntityTooLarge, "too_large"},
	wire.CodeQuotaExceeded:      {http.StatusInsufficientStorage, "quota_exceeded"},
	wire.CodeRateLimited:        {http.StatusTooManyRequests, "rate_limited"},
	wire.CodeNotLeader:          {http.StatusServiceUnavailable, "unavailable"},
	wire.CodeUnavailable:        {http.StatusServiceUnavailable, "unavailable"},
	wire.CodeTooManyConnections: {http.StatusServiceUnavailable, "too_many_connections"},
	wire.CodeDeadline:           {http.StatusServiceUnavailable, "deadline_exceeded"},
	wire.CodeCommitUnknown:      {http.StatusGatewayTimeout, "commit_unknown"},
}

// codeConditionFailed is the JSON code of a transaction whose conditions
// did not hold (409); it has no wire code: the binary protocol's client
// evaluates conditions itself.
const codeConditionFailed = "condition_failed"

func httpCodeOf(c wire.Code) httpCode {
	if hc, ok := httpCodes[c]; ok {
		return hc
	}
	return httpCodes[wire.CodeInternal]
}

// apiErrorBody is the JSON body of every error answer.
type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeWireError answers resp, which carries an error code, with its
// status, a JSON body and, for 429 and 503, Retry-After.
func writeWireError(w http.ResponseWriter, resp *wire.Response) {
	hc := httpCodeOf(resp.Code)
	switch hc.status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(resp.RetryAfter))
	}
	writeJSON(w, hc.status, apiErrorBody{Code: hc.name, Message: resp.Msg})
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// writeError answers err as the binary protocol would (errorResponse).
func (a *httpAPI) writeError(w http.ResponseWriter, err error) {
	var we *wireError
	if errors.As(err, &we) {
		writeWireError(w, we.resp)
		return
	}
	writeWireError(w, a.s.errorResponse(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"internal","message":"encode answer"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// httpAPI serves /v1/. It holds nothing per tenant; the server's limits do.
type httpAPI struct {
	s       *Server
	forward *http.Transport // to the leader's HTTP address
}

func newHTTPAPI(s *Server) *httpAPI {
	tr := &http.Transport{
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       httpIdleTimeoutMax,
		ResponseHeaderTimeout: maxWatchWait + httpRequestTimeout,
		DisableCompression:    true,
	}
	if s.cfg.HTTPTLSCertFile != "" {
		// The leader serves its HTTP address as this node does: over TLS,
		// with a certificate the client CA (or the system) vouches for.
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if s.peerTLS != nil {
			tr.TLSClientConfig.RootCAs = s.peerTLS.RootCAs
		}
	}
	return &httpAPI{s: s, forward: tr}
}

// forwardScheme is the scheme of the leader's HTTP address.
func (a *httpAPI) forwardScheme() string {
	if a.s.cfg.HTTPTLSCertFile != "" {
		return "https"
	}
	return "http"
}

// errForward tells ServeHTTP that this node does not lead and nothing was
// written: the request goes to the leader.
var errForward = errors.New("tenantkv: forward to the leader")

// apiRequest is one HTTP request on its way through the API.
type apiRequest struct {
	r     *http.Request
	rt    route
	p     *principal
	query url.Values
	body  []byte
}

// ServeHTTP authenticates, bounds and routes one request.
func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, err := parseRoute(r.URL.EscapedPath())
	if err != nil {
		writeJSON(w, http.StatusNotFound, apiErrorBody{Code: "not_found", Message: err.Error()})
		return
	}
	h, allow := a.handlerFor(rt.kind, r.Method)
	if h == nil {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, apiErrorBody{Code: "bad_request", Message: "method " + r.Method + " not allowed here (" + allow + ")"})
		return
	}
	if len(r.URL.RawQuery) > maxQueryBytes {
		writeJSON(w, http.StatusRequestURITooLong, apiErrorBody{Code: "bad_request", Message: fmt.Sprintf("query of %d bytes, limit %d", len(r.URL.RawQuery), maxQueryBytes)})
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		a.writeError(w, fmt.Errorf("%w: query: %v", ErrBadRequest, err))
		return
	}
	ar := &apiRequest{r: r, rt: rt, query: q}
	// A request ends when its client goes, or when the node closes.
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	defer context.AfterFunc(a.s.ctx, stop)()
	if rt.kind != routeWatch {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, httpRequestTimeout)
		defer cancel()
		// The answer must be written within WriteTimeout once it is ready.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(httpRequestTimeout + a.s.cfg.WriteTimeout))
	}
	p, refusal := a.authenticate(ctx, r)
	if refusal != nil {
		if refusal.Code == wire.CodeUnauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tenantkv"`)
		}
		writeWireError(w, refusal)
		return
	}
	ar.p = p
	// X-Tenant-ID must name the tenant of the path: the same refusal as a
	// tenant token naming another tenant, at the same point.
	if hdr := r.Header.Values(headerTenant); len(hdr) > 0 && (len(hdr) != 1 || hdr[0] != rt.tenant || rt.tenant == "") {
		a.writeError(w, ErrPermissionDenied)
		return
	}
	// A tenant token's request holds one of its tenant's connection slots
	// on this node while it runs, as a connection of the binary protocol
	// does: one token cannot take more of the node through HTTP.
	release, refused := a.s.admitPrincipal(p)
	if refused != nil {
		writeWireError(w, refused)
		return
	}
	defer release()
	// Its body and what its answer may take are charged to the node's
	// memory budget before it is read, as a frame's are.
	charged, err := a.s.mem.acquire(ctx, a.reserve(rt.kind, r), 0)
	if err != nil {
		a.writeError(w, err)
		return
	}
	defer a.s.mem.release(charged)
	if r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodPatch {
		var buf bytes.Buffer
		if r.ContentLength > 0 && r.ContentLength <= int64(a.s.maxFrame) {
			buf.Grow(int(r.ContentLength) + bytes.MinRead) // what was charged, in one allocation
		}
		_, err = buf.ReadFrom(http.MaxBytesReader(w, r.Body, int64(a.s.maxFrame)))
		ar.body = buf.Bytes()
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeWireError(w, &wire.Response{Code: wire.CodeFrameTooLarge,
					Msg: fmt.Sprintf("request body over %d bytes", a.s.maxFrame)})
				return
			}
			a.writeError(w, fmt.Errorf("%w: reading the body: %v", ErrBadRequest, err))
			return
		}
	}
	err = h(ctx, w, ar)
	if errors.Is(err, errForward) {
		a.forwardToLeader(ctx, w, ar)
		return
	}
	if err != nil {
		a.writeError(w, err)
	}
}

// reserve is what a request is charged before it runs: its body (at most
// a frame) and its answer, as answerReserve sizes a binary answer (a JSON
// page's strings may take up to twice its bytes, escaped).
func (a *httpAPI) reserve(k routeKind, r *http.Request) int64 {
	body := int64(0)
	switch r.Method {
	case http.MethodPut, http.MethodPost, http.MethodPatch:
		body = int64(a.s.maxFrame)
		if r.ContentLength >= 0 && r.ContentLength < body {
			body = r.ContentLength
		}
	}
	switch k {
	case routeKeys, routeTxn:
		return body + 2*pageAnswerReserve
	case routeKey:
		return body + answerReserve(wire.OpGet)
	case routeWatch:
		return watchAnswerReserve
	}
	return body + smallAnswerReserve
}

// authenticate judges the request's bearer token as a hello's: every bad
// or missing token gets the same 401, and a node that cannot judge tokens
// now the same 503, whatever the token.
func (a *httpAPI) authenticate(ctx context.Context, r *http.Request) (*principal, *wire.Response) {
	denied := &wire.Response{Code: wire.CodeUnauthenticated, Msg: "invalid token"}
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 {
		return nil, denied
	}
	secret, ok := strings.CutPrefix(auth[0], "Bearer ")
	if !ok || secret == "" || len(secret) > 1024 {
		tokenMatches(secret, nil) // the same cost as a token that decodes
		return nil, denied
	}
	err := a.s.waitServable(ctx)
	var p *principal
	if err == nil {
		p, err = a.s.authenticate(ctx, secret, false)
	}
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, ErrPermissionDenied):
		return nil, denied
	default:
		a.s.logger.Debug("http: token not judged: node not ready", "error", err)
		resp := helloNotReady
		return nil, &resp
	}
}

// call runs one internal request through the binary protocol's handle,
// and records it in the request metrics as a connection's request is.
func (a *httpAPI) call(ctx context.Context, p *principal, req *wire.Request) *wire.Response {
	start := time.Now()
	resp := a.s.handle(ctx, p, req)
	a.s.requests.observe(req.Op, resp.Code, time.Since(start))
	return resp
}

// answer is call for a handler: it returns errForward for a not-leader
// answer, a *wireError for any other error, or the answer.
func (a *httpAPI) answer(ctx context.Context, ar *apiRequest, req *wire.Request) (*wire.Response, error) {
	resp := a.call(ctx, ar.p, req)
	switch resp.Code {
	case wire.CodeOK:
		return resp, nil
	case wire.CodeNotLeader:
		return nil, errForward
	}
	return nil, &wireError{resp: resp}
}

// wireError is an error answer of handle, carried back to ServeHTTP.
type wireError struct{ resp *wire.Response }

func (e *wireError) Error() string { return e.resp.Msg }

// handlerFunc serves one endpoint. It writes the answer, or returns an
// error for ServeHTTP to answer (errForward: send it to the leader).
type handlerFunc func(ctx context.Context, w http.ResponseWriter, ar *apiRequest) error

func (a *httpAPI) handlerFor(k routeKind, method string) (handlerFunc, string) {
	type ep struct {
		method string
		h      handlerFunc
	}
	var eps []ep
	switch k {
	case routeTenants:
		eps = []ep{{http.MethodGet, a.listTenants}, {http.MethodPost, a.createTenant}}
	case routeTenant:
		eps = []ep{{http.MethodGet, a.getTenant}, {http.MethodPatch, a.updateTenant}, {http.MethodDelete, a.deleteTenant}}
	case routeTokens:
		eps = []ep{{http.MethodGet, a.listTokens}, {http.MethodPost, a.newToken}}
	case routeToken:
		eps = []ep{{http.MethodDelete, a.revokeToken}}
	case routeKeys:
		eps = []ep{{http.MethodGet, a.listKeys}, {http.MethodDelete, a.deleteRange}}
	case routeKey:
		eps = []ep{{http.MethodGet, a.getKey}, {http.MethodPut, a.putKey}, {http.MethodDelete, a.deleteKey}}
	case routeTxn:
		eps = []ep{{http.MethodPost, a.txn}}
	case routeWatch:
		eps = []ep{{http.MethodGet, a.watch}}
	}
	var allow []string
	for _, e := range eps {
		if e.method == method {
			return e.h, ""
		}
		allow = append(allow, e.method)
	}
	return nil, strings.Join(allow, ", ")
}

// routeKind is an endpoint of the API.
type routeKind int

const (
	routeTenants routeKind = iota + 1 // /v1/tenants
	routeTenant                       // /v1/tenants/{tenant}
	routeTokens                       // /v1/tenants/{tenant}/tokens
	routeToken                        // /v1/tenants/{tenant}/tokens/{id}
	routeKeys                         // /v1/tenants/{tenant}/keys
	routeKey                          // /v1/tenants/{tenant}/keys/{key}
	routeTxn                          // /v1/tenants/{tenant}/txn
	routeWatch                        // /v1/tenants/{tenant}/watch
)

// route is a parsed path: the tenant named, and the key or token ID.
type route struct {
	kind   routeKind
	tenant string
	key    []byte
	token  string
}

// parseRoute parses an escaped path (r.URL.EscapedPath()): the key is the
// rest of the path after /keys/, percent-decoded here, so that %2F and any
// byte survive (the server's own decoding of the path would have merged
// them with the separators).
func parseRoute(escaped string) (route, error) {
	var rt route
	rest, ok := strings.CutPrefix(escaped, "/v1/tenants")
	if !ok {
		return rt, fmt.Errorf("no endpoint %q", escaped)
	}
	if rest == "" || rest == "/" {
		rt.kind = routeTenants
		return rt, nil
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return rt, fmt.Errorf("no endpoint %q", escaped)
	}
	seg, sub, hasSub := strings.Cut(rest, "/")
	name, err := url.PathUnescape(seg)
	if err != nil || name == "" {
		return rt, fmt.Errorf("no endpoint %q: bad tenant segment", escaped)
	}
	rt.tenant = name
	if !hasSub {
		rt.kind = routeTenant
		return rt, nil
	}
	switch {
	case sub == "keys":
		rt.kind = routeKeys
	case strings.HasPrefix(sub, "keys/"):
		key, err := url.PathUnescape(sub[len("keys/"):])
		if err != nil {
			return rt, fmt.Errorf("key: %v", err)
		}
		rt.kind, rt.key = routeKey, []byte(key)
	case sub == "txn":
		rt.kind = routeTxn
	case sub == "watch":
		rt.kind = routeWatch
	case sub == "tokens":
		rt.kind = routeTokens
	case strings.HasPrefix(sub, "tokens/"):
		id, err := url.PathUnescape(sub[len("tokens/"):])
		if err != nil || id == "" || strings.Contains(id, "/") {
			return rt, fmt.Errorf("no endpoint %q: bad token segment", escaped)
		}
		rt.kind, rt.token = routeToken, id
	default:
		return rt, fmt.Errorf("no endpoint %q", escaped)
	}
	return rt, nil
}
