/** What the numbers were measured on. */
import { cpus, totalmem, loadavg, release, platform } from 'node:os';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

function cpuModel() {
  const c = cpus();
  return c.length > 0 ? c[0].model.trim() : 'unknown';
}

function version(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0];
  } catch {
    return null;
  }
}

function cgroupCpus() {
  try {
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(' ');
    return quota === 'max' ? null : Number(quota) / Number(period);
  } catch {
    return null;
  }
}

/** A description of the machine and the software under test. */
export function describeMachine(nofile) {
  return {
    platform: `${platform()} ${release()}`,
    cpuModel: cpuModel(),
    cores: cpus().length,
    cgroupCpuLimit: cgroupCpus(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    websockify: version('dpkg-query', ['-W', '-f=${Version}', 'websockify']),
    nofile,
    loadAvgAtStart: loadavg().map((v) => Math.round(v * 100) / 100),
  };
}
