import net from 'node:net';
/** client -> middlebox -> service; cut() destroys all pairs. mode 'rst' resets, 'blackhole' stops forwarding silently. */
export async function middlebox(port) {
  const pairs = new Set();
  let accepted = 0;
  const server = net.createServer((c) => {
    accepted++;
    const u = net.connect({ host: '127.0.0.1', port });
    const pair = { c, u, dead: false };
    pairs.add(pair);
    const drop = () => { pairs.delete(pair); c.destroy(); u.destroy(); };
    c.on('error', drop); u.on('error', drop); c.on('close', drop); u.on('close', drop);
    c.on('data', (d) => { if (!pair.dead && !u.write(d)) { c.pause(); u.once('drain', () => c.resume()); } });
    u.on('data', (d) => { if (!pair.dead && !c.write(d)) { u.pause(); c.once('drain', () => u.resume()); } });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    get accepted() { return accepted; },
    cut() { let n = 0; for (const p of [...pairs]) { n++; p.c.resetAndDestroy?.() ?? p.c.destroy(); p.u.destroy(); pairs.delete(p); } return n; },
    cutClientOnly() { let n = 0; for (const p of [...pairs]) { n++; p.c.destroy(); pairs.delete(p); p.u.removeAllListeners('close'); p.u.removeAllListeners('data'); p.u.on('data', () => {}); } return n; },
    blackhole() { for (const p of pairs) p.dead = true; pairs.clear(); },
    close() { for (const p of pairs) { p.c.destroy(); p.u.destroy(); } server.close(); },
  };
}
