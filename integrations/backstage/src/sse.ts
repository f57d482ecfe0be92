// Server-Sent Events over a fetch body, as the HTML standard parses them ("event stream
// interpretation"): Node 20 has fetch streams but no EventSource, and EventSource could not send
// an Authorization header anyway.

/** One dispatched event. `id` is the last event id seen on the stream so far, as the standard keeps it. */
export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | undefined;
}

/** Reads events from a byte stream until it ends; comments (heartbeats) are skipped. */
export async function* readServerSentEvents(
  body: AsyncIterable<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let event = '';
  let data: string[] = [];
  let lastId: string | undefined;
  let first = true;

  const line = (text: string): ServerSentEvent | undefined => {
    if (text === '') {
      const dispatched =
        data.length > 0 ? { event: event || 'message', data: data.join('\n'), id: lastId } : undefined;
      event = '';
      data = [];
      return dispatched;
    }
    if (text.startsWith(':')) {
      return undefined;
    }
    const colon = text.indexOf(':');
    const name = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) {
      value = value.slice(1);
    }
    switch (name) {
      case 'event':
        event = value;
        break;
      case 'data':
        data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          lastId = value;
        }
        break;
      default:
        // `retry` and unknown fields: this reader schedules its own reconnects.
        break;
    }
    return undefined;
  };

  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    if (first && pending.length > 0) {
      first = false;
      if (pending.charCodeAt(0) === 0xfeff) {
        pending = pending.slice(1);
      }
    }
    let start = 0;
    for (;;) {
      const end = nextLineEnd(pending, start);
      if (end < 0) {
        break;
      }
      // A CR at the very end may be the first half of CRLF: wait for the next chunk.
      if (pending[end] === '\r' && end + 1 === pending.length) {
        break;
      }
      const dispatched = line(pending.slice(start, end));
      start = pending[end] === '\r' && pending[end + 1] === '\n' ? end + 2 : end + 1;
      if (dispatched) {
        yield dispatched;
      }
    }
    pending = pending.slice(start);
  }
  // The standard drops an event that the stream ends in the middle of.
}

function nextLineEnd(text: string, from: number): number {
  const lf = text.indexOf('\n', from);
  const cr = text.indexOf('\r', from);
  if (lf < 0) return cr;
  if (cr < 0) return lf;
  return Math.min(lf, cr);
}
