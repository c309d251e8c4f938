// The node's end of the control channel: newline-delimited JSON, one message per line.
import net from 'node:net'
import { toLine } from './wire.js'

/**
 * Opens TESTBED_CONTROL_ADDR: "tcp://host:port" or "unix:/path".
 * @param {string} addr
 * @returns {Promise<Control>}
 */
export function dialControl (addr) {
  let opts
  if (addr.startsWith('tcp://')) {
    const hostPort = addr.slice('tcp://'.length)
    const i = hostPort.lastIndexOf(':')
    if (i < 0) throw new Error(`TESTBED_CONTROL_ADDR "${addr}": expected tcp://HOST:PORT or unix:/PATH`)
    opts = { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) }
  } else if (addr.startsWith('unix:')) {
    opts = { path: addr.slice('unix:'.length).replace(/^\/\//, '') }
  } else {
    throw new Error(`TESTBED_CONTROL_ADDR "${addr}": expected tcp://HOST:PORT or unix:/PATH`)
  }
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(opts)
    sock.once('connect', () => {
      sock.removeListener('error', reject)
      resolve(new Control(sock))
    })
    sock.once('error', (err) => reject(new Error(`cannot reach the orchestrator at ${addr}: ${err.message}`)))
  })
}

export class Control {
  /** @param {net.Socket} sock */
  constructor (sock) {
    this.sock = sock
    this.closed = false
    sock.setNoDelay(true)
    sock.on('error', () => {}) // reported as 'close'
  }

  /** Sends one message; a no-op once closed. */
  send (msg) {
    if (this.closed) return
    this.sock.write(toLine(msg))
  }

  /** Sends the last message, closes, resolves when it is flushed. */
  sendFinal (msg) {
    if (this.closed) return Promise.resolve()
    this.closed = true
    return new Promise((resolve) => {
      this.sock.end(toLine(msg), () => resolve())
      setTimeout(resolve, 2000).unref()
    })
  }

  /**
   * Calls onMessage for each parsed line, onBadLine for a line that is not JSON, onClose at
   * the end of the stream.
   */
  listen (onMessage, onBadLine, onClose) {
    let buf = ''
    this.sock.setEncoding('utf8')
    this.sock.on('data', (chunk) => {
      buf += chunk
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim()
        buf = buf.slice(nl + 1)
        if (line === '') continue
        let msg
        try {
          msg = parseLine(line)
        } catch (err) {
          onBadLine(`malformed control message ${JSON.stringify(line.slice(0, 200))}: ${err.message}`)
          continue
        }
        onMessage(msg)
      }
    })
    this.sock.on('close', () => onClose())
  }
}

/**
 * Parses one orchestrator line. Message ids are u64: one beyond 2^53 would lose digits as a
 * JS number, so it becomes a BigInt (echoed exactly in ack and pong by wire.js).
 * @param {string} line
 */
export function parseLine (line) {
  const msg = JSON.parse(line.replace(/"id":(\d{16,})/g, '"id":"$1"'))
  if (typeof msg?.id === 'string' && /^\d+$/.test(msg.id)) msg.id = BigInt(msg.id)
  return msg
}
