// One GET /v1/watch connection: opens it (resuming with Last-Event-ID and ?epoch= when asked)
// and yields the stream's events, checked. It decides nothing; the follower does.

import { MeshChange, MeshProtocolError, MeshSnapshot, SkippedChange, parseDelta, parseSnapshot } from './mesh';
import { readServerSentEvents } from './sse';

export type WatchEvent =
  | { type: 'snapshot'; id: number; snapshot: MeshSnapshot; bytes: number }
  | { type: 'delta'; id: number; change: MeshChange | SkippedChange; bytes: number }
  | { type: 'position'; id: number; epoch: string; sequence: number }
  /** cutoff, shutdown, busy, access: the stream ends. */
  | { type: 'end'; reason: string; event: string };

/** Where to resume from: the last id seen and its epoch. */
export interface ResumePoint {
  epoch: string;
  id: number;
}

/** The server answered something other than a stream; `status` says what. */
export class WatchRefusedError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message);
    this.name = 'WatchRefusedError';
  }
}

export interface WatchOptions {
  baseUrl: string;
  token: string | undefined;
  resume: ResumePoint | undefined;
  signal: AbortSignal;
  /** A stream silent for this long is dead (default 45 s: three of the server's 15 s heartbeats). */
  idleTimeoutMs?: number;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/** The stream went silent past its idle timeout: the connection is presumed dead. */
export class WatchIdleError extends Error {
  constructor(ms: number) {
    super(`no data, not even a heartbeat, for ${ms} ms`);
    this.name = 'WatchIdleError';
  }
}

export function watchUrl(baseUrl: string, resume: ResumePoint | undefined): string {
  const url = `${baseUrl.replace(/\/$/, '')}/v1/watch`;
  return resume ? `${url}?epoch=${encodeURIComponent(resume.epoch)}` : url;
}

/** Opens the stream; throws WatchRefusedError on any answer but 200. */
export async function openWatch(options: WatchOptions): Promise<AsyncGenerator<WatchEvent>> {
  // application/json asks for status codes (503 while the mesh loads or beyond the caps), which
  // the follower obeys, rather than a held stream or a `busy` event meant for an EventSource.
  const headers: Record<string, string> = { Accept: 'text/event-stream, application/json' };
  if (options.token) {
    headers.Authorization = `Bearer ${options.token}`;
  }
  if (options.resume) {
    headers['Last-Event-ID'] = `${options.resume.epoch}-${options.resume.id}`;
  }
  // Our own controller, so a silent connection can be dropped without stopping the follower.
  const connection = new AbortController();
  const stop = () => connection.abort();
  options.signal.addEventListener('abort', stop, { once: true });
  const response = await fetch(watchUrl(options.baseUrl, options.resume), {
    headers,
    signal: connection.signal,
  }).catch((error) => {
    options.signal.removeEventListener('abort', stop);
    throw error;
  });
  if (response.status !== 200 || !response.body) {
    options.signal.removeEventListener('abort', stop);
    const body = await response.text().catch(() => '');
    const retryAfter = Number(response.headers.get('retry-after'));
    throw new WatchRefusedError(
      response.status,
      `GET /v1/watch answered ${response.status}: ${body.slice(0, 300)}`,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
    );
  }
  const body = watchdog(
    response.body as unknown as AsyncIterable<Uint8Array>,
    options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    connection,
    () => options.signal.removeEventListener('abort', stop),
  );
  return events(body);
}

/** Passes the body through, aborting the connection when no chunk comes within idleMs. */
async function* watchdog(
  body: AsyncIterable<Uint8Array>,
  idleMs: number,
  connection: AbortController,
  done: () => void,
): AsyncGenerator<Uint8Array> {
  let idle = false;
  let timer = setTimeout(expire, idleMs);
  function expire() {
    idle = true;
    connection.abort();
  }
  try {
    for await (const chunk of body) {
      clearTimeout(timer);
      // Only time spent waiting for the server counts, not the time the catalog takes.
      yield chunk;
      timer = setTimeout(expire, idleMs);
    }
  } catch (error) {
    throw idle ? new WatchIdleError(idleMs) : error;
  } finally {
    clearTimeout(timer);
    // Leaving early (the follower stopped reading) closes the connection too.
    connection.abort();
    done();
  }
}

async function* events(body: AsyncIterable<Uint8Array>): AsyncGenerator<WatchEvent> {
  for await (const sse of readServerSentEvents(body)) {
    switch (sse.event) {
      case 'snapshot':
        yield { type: 'snapshot', id: eventId(sse.id, 'snapshot'), snapshot: parseSnapshot(json(sse.data, 'snapshot')), bytes: sse.data.length };
        break;
      case 'delta':
        yield { type: 'delta', id: eventId(sse.id, 'delta'), change: parseDelta(json(sse.data, 'delta')), bytes: sse.data.length };
        break;
      case 'position': {
        const position = json(sse.data, 'position') as { epoch?: unknown; sequence?: unknown };
        if (typeof position.epoch !== 'string' || !Number.isSafeInteger(position.sequence)) {
          throw new MeshProtocolError(`position: want {epoch, sequence}, got ${sse.data.slice(0, 200)}`);
        }
        yield { type: 'position', id: eventId(sse.id, 'position'), epoch: position.epoch, sequence: position.sequence as number };
        break;
      }
      case 'cutoff':
      case 'shutdown':
      case 'busy':
      case 'access': {
        const end = json(sse.data, sse.event) as { reason?: unknown };
        yield { type: 'end', event: sse.event, reason: typeof end.reason === 'string' ? end.reason : '' };
        return;
      }
      default:
        // Unknown events are skipped, so what a newer broadcaster adds does not break this reader.
        break;
    }
  }
}

function json(data: string, event: string): unknown {
  try {
    return JSON.parse(data);
  } catch (error) {
    throw new MeshProtocolError(`${event}: data is not JSON (${(error as Error).message})`);
  }
}

/**
 * The sequence an event id names: "<epoch>-<sequence>" (split at the last "-"), or a sequence
 * alone as older broadcasters send it.
 */
export function eventId(id: string | undefined, event: string): number {
  const dash = id === undefined ? -1 : id.lastIndexOf('-');
  const digits = id === undefined ? '' : id.slice(dash + 1);
  const n = Number(digits);
  if (dash === 0 || !/^[0-9]+$/.test(digits) || !Number.isSafeInteger(n)) {
    throw new MeshProtocolError(`${event}: id ${JSON.stringify(id)} is not <epoch>-<sequence> or a sequence`);
  }
  return n;
}
