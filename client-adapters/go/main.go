// fcgispec-go-adapter: the client adapter protocol (client-adapters/adapter_protocol.py) on Go's net/http.
//
// ONE *http.Transport for the adapter's life: a clone of http.DefaultTransport (what most Go programs use), with
// Proxy off (the suite's servers are local), TLSClientConfig.RootCAs from --cacert, and MaxIdleConnsPerHost from
// --max-idle-per-host (Go's default: 2). The http.Client does not follow redirects, so that one request line gives
// the one response the server sent, as with the other adapters.
//
// Each request runs under a context with the --timeout deadline (the whole exchange, body included). The body is
// read to EOF with io.Copy, then Body.Close(); ABANDON reads N bytes, then Body.Close() without reading further.
// CLOSE_IDLE is Transport.CloseIdleConnections(). "reused" comes from httptrace GotConnInfo.Reused (of the last
// attempt, when the Transport retried), "connects" from a counting DialContext.
//
// Built without modules (standard library only): GO111MODULE=off go build -o OUT main.go
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var methods = map[string]bool{"GET": true, "HEAD": true, "DELETE": true, "OPTIONS": true, "PUT": true,
	"POST": true, "PATCH": true, "TRACE": true}
var bodyMethods = map[string]bool{"POST": true, "PUT": true, "PATCH": true}

type job struct {
	method, url string
	body        []byte
	hasBody     bool
	headers     [][2]string
	abandon     int64 // -1: read the whole body
	parseErr    string
}

type result struct {
	status     int // -1: null
	bodyLength int64
	sha        string
	err        string
	reused     int // -1: unknown, 0, 1
	connects   int64
}

type adapter struct {
	tr       *http.Transport
	client   *http.Client
	timeout  time.Duration
	connects int64
}

func parseJob(line string) job {
	tok := strings.Split(line, " ")
	j := job{method: "GET", abandon: -1}
	if len(tok) < 2 {
		j.parseErr = "adapter: malformed request line"
		return j
	}
	next := 2
	if tok[0] == "ABANDON" {
		n, err := strconv.ParseInt(tok[2%len(tok)], 10, 64)
		if len(tok) != 3 || err != nil || n < 0 {
			j.parseErr = "adapter: ABANDON URL N"
			return j
		}
		j.abandon = n
		next = 3
	} else if methods[tok[0]] {
		j.method = tok[0]
		if bodyMethods[tok[0]] {
			j.hasBody = true
			if len(tok) > 2 && !strings.Contains(tok[2], ":") {
				n, err := strconv.ParseUint(tok[2], 10, 32)
				if err != nil {
					j.parseErr = "adapter: bad BODYLEN"
					return j
				}
				j.body = bytes.Repeat([]byte("x"), int(n))
				next = 3
			}
		}
	} else {
		j.parseErr = "adapter: unknown command"
		return j
	}
	j.url = tok[1]
	for _, t := range tok[next:] {
		i := strings.IndexByte(t, ':')
		if i <= 0 {
			j.parseErr = "adapter: header token must be Name:Value"
			return j
		}
		j.headers = append(j.headers, [2]string{t[:i], t[i+1:]})
	}
	return j
}

func (a *adapter) perform(j job) (r result) {
	r = result{status: -1, reused: -1}
	defer func() { r.connects = atomic.LoadInt64(&a.connects) }()
	if j.parseErr != "" {
		r.err = j.parseErr
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if info.Reused {
				r.reused = 1
			} else {
				r.reused = 0
			}
		},
	})
	var body io.Reader
	if j.hasBody {
		if len(j.body) > 0 {
			body = bytes.NewReader(j.body)
		} else {
			body = http.NoBody
		}
	}
	req, err := http.NewRequestWithContext(ctx, j.method, j.url, body)
	if err != nil {
		r.err = err.Error()
		return
	}
	for _, h := range j.headers {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
		} else {
			req.Header.Add(h[0], h[1])
		}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		r.err = err.Error()
		return
	}
	h := sha256.New()
	var n int64
	if j.abandon >= 0 {
		n, err = io.Copy(h, io.LimitReader(resp.Body, j.abandon))
	} else {
		n, err = io.Copy(h, resp.Body)
	}
	resp.Body.Close()
	r.bodyLength = n
	if err != nil {
		r.err = err.Error()
		return
	}
	r.status = resp.StatusCode
	r.sha = hex.EncodeToString(h.Sum(nil))
	return
}

func (r result) line() string {
	var b strings.Builder
	if r.status >= 0 {
		fmt.Fprintf(&b, "{\"status\": %d, ", r.status)
	} else {
		b.WriteString("{\"status\": null, ")
	}
	fmt.Fprintf(&b, "\"body_length\": %d, \"body_sha256\": ", r.bodyLength)
	if r.sha != "" {
		fmt.Fprintf(&b, "%q", r.sha)
	} else {
		b.WriteString("null")
	}
	b.WriteString(", \"error\": ")
	if r.err != "" || r.status < 0 {
		e := r.err
		if e == "" {
			e = "unknown error"
		}
		s, _ := json.Marshal(e)
		b.Write(s)
	} else {
		b.WriteString("null")
	}
	if r.reused >= 0 {
		fmt.Fprintf(&b, ", \"reused\": %t", r.reused == 1)
	}
	fmt.Fprintf(&b, ", \"connects\": %d}\n", r.connects)
	return b.String()
}

func main() {
	cacert := flag.String("cacert", "", "trust this CA (PEM) for https")
	maxIdle := flag.Int("max-idle-per-host", -1, "Transport.MaxIdleConnsPerHost")
	timeout := flag.Float64("timeout", 10, "per request, seconds")
	flag.Parse()
	if flag.NArg() != 0 || *timeout <= 0 {
		flag.Usage()
		os.Exit(2)
	}

	a := &adapter{timeout: time.Duration(*timeout * float64(time.Second))}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	dialer := &net.Dialer{Timeout: a.timeout, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			atomic.AddInt64(&a.connects, 1)
		}
		return c, err
	}
	if *cacert != "" {
		pem, err := os.ReadFile(*cacert)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fcgispec-go-adapter: %v\n", err)
			os.Exit(1)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(os.Stderr, "fcgispec-go-adapter: no certificate in %s\n", *cacert)
			os.Exit(1)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	if *maxIdle >= 0 {
		tr.MaxIdleConnsPerHost = *maxIdle
		if *maxIdle == 0 {
			tr.DisableKeepAlives = true // Go treats 0 as "the default (2)"; 0 idle means no keep-alive
		}
	}
	a.tr = tr
	a.client = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	readLine := func() (string, bool) {
		s, err := in.ReadString('\n')
		if err != nil && s == "" {
			return "", false
		}
		return strings.TrimRight(s, "\r\n"), true
	}
	control := func(line string) bool {
		if strings.HasPrefix(line, "SLEEP ") {
			if ms, err := strconv.ParseUint(line[6:], 10, 32); err == nil {
				time.Sleep(time.Duration(ms) * time.Millisecond)
				return true
			}
		}
		if line == "CLOSE_IDLE" {
			tr.CloseIdleConnections()
			return true
		}
		return false
	}
	emit := func(r result) {
		out.WriteString(r.line())
		out.Flush()
	}
	for {
		line, ok := readLine()
		if !ok {
			break
		}
		if line == "" || control(line) {
			continue
		}
		if strings.HasPrefix(line, "CONCURRENT ") {
			if k, err := strconv.ParseUint(line[11:], 10, 16); err == nil && k > 0 {
				var jobs []job
				for uint64(len(jobs)) < k {
					sub, ok := readLine()
					if !ok {
						break
					}
					if sub == "" || control(sub) {
						continue
					}
					jobs = append(jobs, parseJob(sub))
				}
				results := make([]result, len(jobs))
				var wg sync.WaitGroup
				for i := range jobs {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						results[i] = a.perform(jobs[i])
					}(i)
				}
				wg.Wait()
				for _, r := range results {
					emit(r)
				}
				continue
			}
		}
		emit(a.perform(parseJob(line)))
	}
	tr.CloseIdleConnections()
}
