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

  // A line ended by CR may be the first half of CRLF: the LF, even in the next chunk, is skipped.
  let skipLF = false;
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    if (first && pending.length > 0) {
      first = false;
      if (pending.charCodeAt(0) === 0xfeff) {
        pending = pending.slice(1);
      }
    }
    let start = 0;
    if (skipLF && pending.length > 0) {
      skipLF = false;
      if (pending[0] === '\n') start = 1;
    }
    for (;;) {
      const end = nextLineEnd(pending, start);
      if (end < 0) {
        break;
      }
      const dispatched = line(pending.slice(start, end));
      if (pending[end] === '\r') {
        if (end + 1 === pending.length) {
          skipLF = true;
          start = end + 1;
        } else {
          start = pending[end + 1] === '\n' ? end + 2 : end + 1;
        }
      } else {
        start = end + 1;
      }
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
