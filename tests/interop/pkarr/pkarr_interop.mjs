// npm pkarr 1.3.0 against iroh-relay's /pkarr API (driven by tests/interop/pkarr_interop_test.py).
//   node pkarr_interop.mjs publish <base url>           relayPut a fresh packet, relayGet it back;
//                                                        prints {"z32":..,"payload_hex":..}
//   node pkarr_interop.mjs read <base url> <z32>        relayGet a packet someone else published;
//                                                        prints {"records":[..],"timestamp":..}
import { Pkarr, SignedPacket, z32 } from 'pkarr'

const [mode, base, key] = process.argv.slice(2)

function fail (message) {
  console.error('pkarr_interop: ' + message)
  process.exit(1)
}

function txtStrings (answer) {
  const data = Array.isArray(answer.data) ? answer.data : [answer.data]
  return data.map((d) => Buffer.from(d).toString('utf8')).join('')
}

if (mode === 'publish') {
  const keyPair = Pkarr.generateKeyPair()
  const packet = {
    id: 0,
    type: 'response',
    flags: 0,
    answers: [
      { name: '_iroh', type: 'TXT', class: 'IN', ttl: 30, data: 'relay=https://relay.example./' },
      { name: '_iroh', type: 'TXT', class: 'IN', ttl: 30, data: 'addr=192.0.2.7:4433' }
    ]
  }
  const signed = SignedPacket.fromPacket(keyPair, packet)
  const put = await Pkarr.relayPut(base, signed)
  if (put.status !== 204) fail('relayPut answered ' + put.status + ': ' + (await put.text()))
  const back = await Pkarr.relayGet(base, keyPair.publicKey)
  if (Buffer.compare(Buffer.from(back.bytes()), Buffer.from(signed.bytes())) !== 0) {
    fail('relayGet returned other bytes than were published')
  }
  console.log(JSON.stringify({
    z32: z32.encode(keyPair.publicKey),
    payload_hex: Buffer.from(signed.bytes()).toString('hex')
  }))
} else if (mode === 'read') {
  const signed = await Pkarr.relayGet(base, z32.decode(key))
  const records = signed.packet().answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, txt: a.type === 'TXT' ? txtStrings(a) : null }))
  console.log(JSON.stringify({ records, timestamp: String(signed.timestamp()) }))
} else {
  fail('usage: pkarr_interop.mjs publish <base url> | read <base url> <z32>')
}
