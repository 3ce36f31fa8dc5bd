import type { Socket } from 'node:net';
import { resetSocket } from '../common/reset-socket.js';

/**
 * Ends `target` (its FIN goes after the pending writes) and resets it (RST:
 * what it never took, or still sends, is thrown away) if
 * it has not closed `withinMs` later. A fixed deadline, not `socket.setTimeout`:
 * that is an idle timer, and a target that ignores the FIN and keeps sending
 * would reset it forever, holding the relay and its limit slot. The target is
 * read on (a paused socket would never see its FIN); the caller's listener
 * decides what becomes of those bytes.
 */
export function endTarget(target: Socket, withinMs: number): void {
  if (target.destroyed) return;
  target.resume();
  target.end();
  const deadline = setTimeout(() => resetSocket(target), withinMs);
  deadline.unref();
  target.once('close', () => clearTimeout(deadline));
}
