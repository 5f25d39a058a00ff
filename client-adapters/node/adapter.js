#!/usr/bin/env node
// fcgispec node adapter: the client adapter protocol (client-adapters/adapter_protocol.py) on Node's http/https modules.
//
// ONE keep-alive Agent per scheme for the adapter's life: new http.Agent({keepAlive: true}) and
// new https.Agent({keepAlive: true, ca}) with --cacert's PEM as `ca`. --max-idle-per-host N is the Agents'
// maxFreeSockets (Node's default: 256). No other option is changed: in particular the adapter does NOT add the
// retry-on-`req.reusedSocket` pattern that Node's documentation suggests to its users, so what the suite sees is
// what the http module does by itself.
//
// Each request: http(s).request(url, {method, headers, agent}), req.end(body). The body is read through 'data'
// events to 'end'; ABANDON takes N bytes and then res.destroy() (Node's way to drop a response). --timeout is a
// deadline for the whole exchange (req.destroy on expiry). CLOSE_IDLE destroys every socket in the Agents'
// freeSockets. "reused" is req.reusedSocket; "connects" counts sockets the Agents opened that connected.
'use strict';

const http = require('http');
const https = require('https');
const crypto = require('crypto');
const fs = require('fs');
const readline = require('readline');

const METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'PUT', 'POST', 'PATCH', 'TRACE']);
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function usage() {
  process.stderr.write('usage: adapter.js [--cacert PATH] [--max-idle-per-host N] [--timeout SECONDS]\n');
  process.exit(2);
}

const opts = { cacert: null, maxIdle: null, timeout: 10 };
{
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const val = argv[i + 1];
    if (val === undefined) usage();
    if (argv[i] === '--cacert') opts.cacert = val;
    else if (argv[i] === '--max-idle-per-host' && /^\d+$/.test(val)) opts.maxIdle = Number(val);
    else if (argv[i] === '--timeout' && Number(val) > 0) opts.timeout = Number(val);
    else usage();
  }
}

let connects = 0;
const agentOpts = { keepAlive: true };
if (opts.maxIdle !== null) agentOpts.maxFreeSockets = opts.maxIdle;
const httpAgent = new http.Agent(agentOpts);
const httpsAgent = new https.Agent(Object.assign({}, agentOpts, opts.cacert ? { ca: fs.readFileSync(opts.cacert) } : {}));
for (const [agent, event] of [[httpAgent, 'connect'], [httpsAgent, 'secureConnect']]) {
  const create = agent.createConnection;
  agent.createConnection = function (...args) {
    const sock = create.apply(this, args);
    if (sock) sock.once(event, () => { connects++; });
    return sock;
  };
}

function parseJob(line) {
  const tok = line.split(' ');
  const job = { method: 'GET', url: '', body: null, headers: [], abandon: -1, parseError: null };
  if (tok.length < 2) { job.parseError = 'adapter: malformed request line'; return job; }
  let next = 2;
  if (tok[0] === 'ABANDON') {
    if (tok.length !== 3 || !/^\d+$/.test(tok[2])) { job.parseError = 'adapter: ABANDON URL N'; return job; }
    job.abandon = Number(tok[2]);
    next = 3;
  } else if (METHODS.has(tok[0])) {
    job.method = tok[0];
    if (BODY_METHODS.has(tok[0])) {
      job.body = Buffer.alloc(0);
      if (tok.length > 2 && !tok[2].includes(':')) {
        if (!/^\d+$/.test(tok[2])) { job.parseError = 'adapter: bad BODYLEN'; return job; }
        job.body = Buffer.alloc(Number(tok[2]), 'x');
        next = 3;
      }
    }
  } else {
    job.parseError = 'adapter: unknown command';
    return job;
  }
  job.url = tok[1];
  for (const t of tok.slice(next)) {
    const i = t.indexOf(':');
    if (i <= 0) { job.parseError = 'adapter: header token must be Name:Value'; return job; }
    job.headers.push([t.slice(0, i), t.slice(i + 1)]);
  }
  return job;
}

function result(status, length, sha, error, reused) {
  const r = { status, body_length: length, body_sha256: sha, error };
  if (reused !== null && reused !== undefined) r.reused = !!reused;
  r.connects = connects;
  return r;
}

function errText(e) {
  if (!e) return 'unknown error';
  return e.code ? `${e.code}: ${e.message}` : String(e.message || e);
}

function perform(job) {
  return new Promise((resolve) => {
    if (job.parseError) { resolve(result(null, 0, null, job.parseError, null)); return; }
    let url;
    try { url = new URL(job.url); } catch (e) { resolve(result(null, 0, null, errText(e), null)); return; }
    const tls = url.protocol === 'https:';
    const headers = {};
    for (const [n, v] of job.headers) {
      if (headers[n] === undefined) headers[n] = v;
      else headers[n] = [].concat(headers[n], v);
    }
    if (job.body !== null && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
      headers['Content-Length'] = String(job.body.length);
    }
    const hash = crypto.createHash('sha256');
    let length = 0;
    let done = false;
    let req;
    const reused = () => (req && req.socket ? req.reusedSocket : null);
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      const e = new Error(`timeout after ${opts.timeout} s`);
      finish(result(null, length, null, errText(e), reused()));
      req.destroy(e);
    }, opts.timeout * 1000);
    try {
      req = (tls ? https : http).request(url, { method: job.method, headers, agent: tls ? httpsAgent : httpAgent });
    } catch (e) {
      finish(result(null, 0, null, errText(e), null));
      return;
    }
    req.on('error', (e) => finish(result(null, length, null, errText(e), reused())));
    req.on('response', (res) => {
      const ok = () => finish(result(res.statusCode, length, hash.digest('hex'), null, reused()));
      if (job.abandon === 0) { ok(); res.destroy(); return; }
      res.on('data', (chunk) => {
        if (done) return;
        if (job.abandon >= 0 && length + chunk.length >= job.abandon) {
          const take = chunk.subarray(0, job.abandon - length);
          hash.update(take);
          length += take.length;
          ok();
          res.destroy(); // the caller drops the rest
          return;
        }
        hash.update(chunk);
        length += chunk.length;
      });
      res.on('end', ok);
      res.on('error', (e) => finish(result(null, length, null, errText(e), reused())));
      res.on('close', () => {
        if (!res.complete) finish(result(null, length, null, 'response closed before its end', reused()));
      });
    });
    req.end(job.body !== null && job.body.length ? job.body : undefined);
  });
}

function emit(r) {
  process.stdout.write(JSON.stringify(r).replace(/^\{"status":/, '{"status": ')
    .replace(/,"(body_length|body_sha256|error|reused|connects)":/g, ', "$1": ') + '\n');
}

function closeIdle() {
  for (const agent of [httpAgent, httpsAgent]) {
    for (const name of Object.keys(agent.freeSockets)) {
      for (const s of agent.freeSockets[name] || []) s.destroy();
    }
  }
}

async function control(line) {
  const m = /^SLEEP (\d+)$/.exec(line);
  if (m) { await new Promise((r) => setTimeout(r, Number(m[1]))); return true; }
  if (line === 'CLOSE_IDLE') { closeIdle(); return true; }
  return false;
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  const it = rl[Symbol.asyncIterator]();
  const nextLine = async () => {
    const { value, done } = await it.next();
    return done ? null : value.replace(/\r$/, '');
  };
  for (;;) {
    const line = await nextLine();
    if (line === null) break;
    if (line === '' || await control(line)) continue;
    const m = /^CONCURRENT (\d+)$/.exec(line);
    if (m && Number(m[1]) > 0) {
      const jobs = [];
      while (jobs.length < Number(m[1])) {
        const sub = await nextLine();
        if (sub === null) break;
        if (sub === '' || await control(sub)) continue;
        jobs.push(parseJob(sub));
      }
      const results = await Promise.all(jobs.map(perform));
      results.forEach(emit);
      continue;
    }
    emit(await perform(parseJob(line)));
  }
  httpAgent.destroy();
  httpsAgent.destroy();
  process.exit(0);
}

main().catch((e) => { process.stderr.write(`adapter: ${e && e.stack}\n`); process.exit(1); });
