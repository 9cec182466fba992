// Length-prefixed JSON for the hand-rolled round-robin: a 4-byte little-endian length, then the
// JSON text of the message.

/** One message as a frame. */
export function frame(message) {
  const body = Buffer.from(JSON.stringify(message));
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32LE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** A stream decoder: give it each chunk read, get back the messages completed by it. */
export function reader() {
  let pending = Buffer.alloc(0);
  return (chunk) => {
    const data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const messages = [];
    let at = 0;
    while (data.length - at >= 4) {
      const end = at + 4 + data.readUInt32LE(at);
      if (end > data.length) break;
      messages.push(JSON.parse(data.toString('utf8', at + 4, end)));
      at = end;
    }
    pending = data.subarray(at);
    return messages;
  };
}
