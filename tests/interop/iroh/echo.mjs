#!/usr/bin/env node
// Echo over a real iroh 1.0 endpoint (npm @number0/iroh), reachable only through one custom relay.
//
//   node echo.mjs --role server --relay URL --id-file FILE [--result-file FILE]
//   node echo.mjs --role client --relay URL --id-file FILE [--bytes N] [--relay-only] [--idle S]
//
// The server echoes every bi-stream of every connection on ALPN and writes its EndpointId to
// --id-file once it is online. The client dials that id with only the relay URL as address,
// pushes --bytes random bytes through one bi-stream, reads the echo back and compares it, while
// sampling conn.paths() every --poll-ms (watchPaths()/watchPathEvents() crash this binding).
// With --idle S it then closes the connection, stays silent for S seconds (only the relay
// keepalive runs) and echoes a second, smaller stream over a new connection (server:
// --max-conns 2). With --restart-request FILE --restarted-marker FILE it instead writes FILE,
// waits for the marker (relay-supervisor.sh restarts the relay in between) and echoes again on
// the same connection (--resume-timeout S bounds that echo). --connect-timeout S bounds the dial
// (a control run that must fail need not wait 30 s).
// Each role prints exactly one JSON line starting with {"role": as its verdict and exits 0 only
// if it passed.
//
// SAFETY: run this only inside a network namespace without a default route (see
// ../netns-pair.sh): the binding keeps iroh's port mapper on, which probes the default gateway.
import { parseArgs } from 'node:util'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import iroh from '@number0/iroh'

const { Endpoint, EndpointAddr, EndpointId, RelayMap, RelayMode, presetMinimal, setLogLevel } = iroh

const { values: opt } = parseArgs({
  options: {
    role: { type: 'string' },
    relay: { type: 'string' },
    'id-file': { type: 'string' },
    'result-file': { type: 'string' },
    alpn: { type: 'string', default: 'iroh-relay-interop/echo/0' },
    bytes: { type: 'string', default: String(1024 * 1024 + 4321) },
    chunk: { type: 'string', default: String(64 * 1024) },
    'relay-only': { type: 'boolean', default: false },
    'poll-ms': { type: 'string', default: '50' },
    'online-timeout': { type: 'string', default: '30' },
    'id-timeout': { type: 'string', default: '40' },
    'transfer-timeout': { type: 'string', default: '60' },
    'connect-timeout': { type: 'string', default: '30' },
    'resume-timeout': { type: 'string' },
    timeout: { type: 'string', default: '100' },
    'max-conns': { type: 'string', default: '1' },
    idle: { type: 'string', default: '0' },
    'restart-request': { type: 'string' },
    'restarted-marker': { type: 'string' },
    log: { type: 'string' },
  },
})

const t0 = performance.now()
const elapsedMs = () => Math.round(performance.now() - t0)
const ALPN = Array.from(Buffer.from(opt.alpn, 'utf8'))
const verdict = { role: opt.role, ok: false, relay: opt.relay, timings_ms: {} }

let finished = false
function finish(ok, extra = {}) {
  if (finished) return
  finished = true
  Object.assign(verdict, extra, { ok })
  if (ok) delete verdict.stage
  verdict.timings_ms.total = elapsedMs()
  const line = JSON.stringify(verdict)
  if (opt['result-file']) {
    try {
      writeFileSync(opt['result-file'], line + '\n')
    } catch {}
  }
  process.stdout.write(line + '\n', () => process.exit(ok ? 0 : 1))
  // process.exit above may never run if stdout is wedged; the binding keeps the loop alive.
  setTimeout(() => process.exit(ok ? 0 : 1), 2000).unref()
}

function fail(stage, err) {
  finish(false, { stage, error: String(err && err.stack ? err.message : err) })
}

// Bounds every await on the binding: a relay that never answers must give a verdict, not a hang.
function within(seconds, what, promise) {
  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${seconds} s`)), seconds * 1000)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

// Records every path the connection ever had; a path counts as "used" once it was selected.
class PathRecorder {
  constructor(conn, intervalMs) {
    this.conn = conn
    this.samples = 0
    this.errors = 0
    this.paths = new Map()
    this.selectedHistory = []
    this.timer = setInterval(() => this.sample(), intervalMs)
    this.sample()
  }
  sample() {
    let snapshot
    try {
      snapshot = this.conn.paths()
    } catch {
      this.errors++
      return
    }
    this.samples++
    for (const p of snapshot) {
      const key = `${p.id}|${p.remoteAddr}`
      let rec = this.paths.get(key)
      if (!rec) {
        rec = { id: p.id, remote: p.remoteAddr, relay: p.isRelay, ip: p.isIp, first_seen_ms: elapsedMs(), selected: false }
        this.paths.set(key, rec)
      }
      rec.rtt_ms = p.rttMs
      rec.tx_bytes = p.stats.udpTxBytes
      rec.rx_bytes = p.stats.udpRxBytes
      if (p.isSelected) {
        if (!rec.selected) rec.first_selected_ms = elapsedMs()
        rec.selected = true
        const last = this.selectedHistory[this.selectedHistory.length - 1]
        if (last !== key) this.selectedHistory.push(key)
      }
    }
  }
  stop() {
    clearInterval(this.timer)
    this.sample()
  }
  report() {
    const all = [...this.paths.values()]
    return {
      samples: this.samples,
      sample_errors: this.errors,
      paths: all,
      selected_sequence: this.selectedHistory,
      non_relay_selected: all.some((p) => p.selected && !p.relay),
      relay_selected: all.some((p) => p.selected && p.relay),
    }
  }
}

async function bindEndpoint(acceptAlpn) {
  const map = RelayMap.empty()
  // No quicPort: QAD needs TLS, which http:// relays in these tests do not have.
  // IROH_INTEROP_AUTH_TOKEN (shared_token relays): iroh sends it as "Authorization: Bearer <t>".
  const authToken = process.env.IROH_INTEROP_AUTH_TOKEN
  map.insert(authToken ? { url: opt.relay, authToken } : { url: opt.relay })
  const builder = Endpoint.builder()
  presetMinimal(builder) // no DNS/pkarr/mDNS address lookup: only the relay map and explicit addrs
  builder.relayMode(RelayMode.custom(map))
  if (acceptAlpn) builder.alpns([ALPN])
  const ep = await within(15, 'bind', builder.bind())
  verdict.endpoint_id = ep.id().toString()
  verdict.timings_ms.bound = elapsedMs()
  await within(Number(opt['online-timeout']), 'online (home relay)', ep.online())
  verdict.timings_ms.online = elapsedMs()
  return ep
}

function relayCounters(ep) {
  try {
    const out = {}
    for (const [k, v] of Object.entries(ep.stats())) {
      if (/relay/i.test(k) && v.value) out[k] = v.value
    }
    return out
  } catch {
    return {}
  }
}

async function echoStream(bi) {
  let n = 0
  for (;;) {
    const chunk = await bi.recv.read(64 * 1024)
    if (chunk.length === 0) break
    n += chunk.length
    await bi.send.writeAll(chunk)
  }
  await bi.send.finish()
  return n
}

async function runServer() {
  verdict.stage = 'bind'
  const ep = await bindEndpoint(true)
  verdict.stage = 'accept'
  const tmp = `${opt['id-file']}.tmp`
  writeFileSync(tmp, verdict.endpoint_id + '\n')
  renameSync(tmp, opt['id-file'])
  const maxConns = Number(opt['max-conns'])
  verdict.connections = []
  for (let i = 0; i < maxConns; i++) {
    const incoming = await ep.acceptNext()
    if (!incoming) throw new Error('endpoint closed while accepting')
    const remote = await incoming.remoteAddr().catch(() => null)
    const conn = await within(20, 'accept handshake', incoming.accept().then((a) => a.connect()))
    const rec = new PathRecorder(conn, Number(opt['poll-ms']))
    const info = { peer: conn.remoteId().toString(), incoming_via: remote, streams: 0, bytes_echoed: 0 }
    verdict.connections.push(info)
    const closed = conn.closed().then((why) => ({ closed: why }))
    const streams = []
    for (;;) {
      const next = await Promise.race([conn.acceptBi().then((bi) => ({ bi })), closed]).catch((e) => ({ closed: String(e) }))
      if (!next.bi) {
        info.close_reason = next.closed
        break
      }
      info.streams++
      streams.push(
        echoStream(next.bi).then(
          (n) => (info.bytes_echoed += n),
          (e) => (info.stream_error = String(e)),
        ),
      )
    }
    await Promise.allSettled(streams)
    rec.stop()
    info.paths = rec.report()
  }
  verdict.relay_counters = relayCounters(ep)
  const problems = []
  for (const [i, c] of verdict.connections.entries()) {
    if (!c.bytes_echoed) problems.push(`connection from ${c.peer} echoed nothing`)
    if (c.stream_error) problems.push(`stream error: ${c.stream_error}`)
    // The first dialer knows no direct address, so that QUIC handshake must come via the relay.
    const viaRelay = c.incoming_via && c.incoming_via.kind === 'relay'
    if ((i === 0 || opt['relay-only']) && !viaRelay) problems.push(`connection did not arrive via the relay: ${JSON.stringify(c.incoming_via)}`)
    if (opt['relay-only'] && c.paths.non_relay_selected) problems.push('a non-relay path was selected (bytes bypassed the relay)')
  }
  // The verdict goes out before ep.close(): a graceful close may take seconds and the runner
  // only waits briefly for this process after the client is done.
  finish(problems.length === 0, problems.length ? { stage: 'verify', error: problems.join('; ') } : {})
  await within(5, 'close', ep.close()).catch(() => {})
}

async function readPeerId() {
  const deadline = Date.now() + Number(opt['id-timeout']) * 1000
  while (Date.now() < deadline) {
    if (existsSync(opt['id-file'])) {
      const text = readFileSync(opt['id-file'], 'utf8').trim()
      if (text) return text
    }
    await sleep(50)
  }
  throw new Error(`no peer id in ${opt['id-file']} after ${opt['id-timeout']} s (server never came online?)`)
}

// One bi-stream: push `payload` while reading the echo concurrently, then compare.
async function echoRound(conn, payload, chunkSize, transferSeconds = Number(opt['transfer-timeout'])) {
  const total = payload.length
  const started = performance.now()
  const bi = await within(10, 'openBi', conn.openBi())
  const writer = (async () => {
    for (let off = 0; off < total; off += chunkSize) {
      await bi.send.writeAll(Array.from(payload.subarray(off, Math.min(off + chunkSize, total))))
    }
    await bi.send.finish()
  })()
  const reader = (async () => {
    const parts = []
    let got = 0
    for (;;) {
      const chunk = await bi.recv.read(64 * 1024)
      if (chunk.length === 0) break
      parts.push(Buffer.from(chunk))
      got += chunk.length
      if (got > total) break
    }
    return Buffer.concat(parts)
  })()
  const [, echoed] = await within(transferSeconds, 'echo transfer', Promise.all([writer, reader]))
  const seconds = (performance.now() - started) / 1000
  let firstDiff = -1
  const n = Math.min(echoed.length, total)
  for (let i = 0; i < n; i++) {
    if (echoed[i] !== payload[i]) {
      firstDiff = i
      break
    }
  }
  if (firstDiff === -1 && echoed.length !== total) firstDiff = n
  return {
    bytes_sent: total,
    bytes_echoed: echoed.length,
    first_mismatch: firstDiff,
    ms: Math.round(seconds * 1000),
    mbit_per_s: Number(((2 * total * 8) / seconds / 1e6).toFixed(2)),
  }
}

async function runClient() {
  const total = Number(opt.bytes)
  const chunkSize = Number(opt.chunk)
  const idleSeconds = Number(opt.idle)
  let stage = 'bind'
  let ep
  let rec
  try {
    ep = await bindEndpoint(false)
    stage = 'peer id'
    const peerText = await readPeerId()
    verdict.peer = peerText
    stage = 'connect'
    const addr = new EndpointAddr(EndpointId.fromString(peerText), opt.relay, [])
    const conn = await within(Number(opt['connect-timeout']), 'connect', ep.connect(addr, ALPN))
    verdict.timings_ms.connected = elapsedMs()
    rec = new PathRecorder(conn, Number(opt['poll-ms']))

    stage = 'transfer'
    verdict.rounds = []
    const first = await echoRound(conn, randomBytes(total), chunkSize)
    verdict.rounds.push(first)
    Object.assign(verdict, { bytes_sent: first.bytes_sent, bytes_echoed: first.bytes_echoed, mbit_per_s: first.mbit_per_s })
    verdict.timings_ms.transferred = elapsedMs()
    if (opt['restart-request'] && first.first_mismatch === -1) {
      // The relay restarts under an open QUIC connection: both endpoints must redial it and the
      // same connection must carry data again.
      stage = 'relay restart'
      const asked = performance.now()
      writeFileSync(opt['restart-request'], 'restart\n')
      const deadline = Date.now() + 30000
      while (!existsSync(opt['restarted-marker'])) {
        if (Date.now() > deadline) throw new Error('the relay did not come back within 30 s')
        await sleep(50)
      }
      verdict.timings_ms.relay_back = elapsedMs()
      stage = 'transfer after relay restart'
      // --resume-timeout: how long after the relay is back the connection may take to carry the
      // echo again (the mesh test's "traffic resumes within 10 s", issue 16).
      const resumeSeconds = Number(opt['resume-timeout'] ?? opt['transfer-timeout'])
      verdict.rounds.push(await echoRound(conn, randomBytes(64 * 1024 + 7), chunkSize, resumeSeconds))
      verdict.timings_ms.after_restart = elapsedMs()
      verdict.restart_to_echo_ms = Math.round(performance.now() - asked)
    }
    verdict.rtt_ms = conn.rtt()
    verdict.conn_stats = conn.stats()
    rec.stop()
    verdict.paths = rec.report()
    rec = null
    conn.close(0n, Array.from(Buffer.from('done')))

    if (idleSeconds > 0 && first.first_mismatch === -1) {
      // Nothing but the relay-level keepalive (client Ping after 15 s of silence, server Ping
      // after 16-20 s) crosses the relay connections now; then a fresh connection must work.
      stage = 'idle'
      await sleep(idleSeconds * 1000)
      stage = 'reconnect after idle'
      const again = await within(30, 'connect after idle', ep.connect(addr, ALPN))
      rec = new PathRecorder(again, Number(opt['poll-ms']))
      stage = 'transfer after idle'
      verdict.rounds.push(await echoRound(again, randomBytes(64 * 1024 + 7), chunkSize))
      verdict.timings_ms.after_idle = elapsedMs()
      rec.stop()
      verdict.paths_after_idle = rec.report()
      rec = null
      again.close(0n, Array.from(Buffer.from('done')))
    }
    verdict.relay_counters = relayCounters(ep)
    await sleep(200) // let the CONNECTION_CLOSE reach the server so it can print its verdict
    await within(5, 'close', ep.close()).catch(() => {})

    const problems = []
    for (const r of verdict.rounds) {
      if (r.first_mismatch !== -1) problems.push(`echo differs: got ${r.bytes_echoed}/${r.bytes_sent} bytes, first mismatch at ${r.first_mismatch}`)
    }
    if (opt['relay-only']) {
      for (const [i, report] of [verdict.paths, verdict.paths_after_idle].filter(Boolean).entries()) {
        const which = i === 0 ? '' : ' (after idle)'
        if (!report.relay_selected) problems.push(`the relay path was never selected${which}`)
        if (report.non_relay_selected) problems.push(`a non-relay path was selected (bytes bypassed the relay)${which}`)
      }
      const relayTx = verdict.paths.paths.filter((p) => p.relay).reduce((sum, p) => sum + (p.tx_bytes || 0), 0)
      if (relayTx < total) problems.push(`only ${relayTx} of ${total} bytes left through the relay path`)
    }
    if (problems.length) return finish(false, { stage: 'verify', error: problems.join('; ') })
    return finish(true)
  } catch (e) {
    if (rec) {
      rec.stop()
      verdict.paths = rec.report()
    }
    if (ep) verdict.relay_counters = relayCounters(ep)
    return fail(stage, e)
  }
}

if (!['server', 'client'].includes(opt.role) || !opt.relay || !opt['id-file']) {
  process.stderr.write('usage: echo.mjs --role server|client --relay URL --id-file FILE [options]\n')
  process.exit(2)
}
if (opt.log) setLogLevel(opt.log)
const overallSeconds = Number(opt.timeout) + Number(opt.idle)
setTimeout(() => fail('overall', `no verdict after ${overallSeconds} s`), overallSeconds * 1000)
const main = opt.role === 'server' ? runServer() : runClient()
main.catch((e) => fail(verdict.stage || opt.role, e))
