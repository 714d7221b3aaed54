// The serve process's own footprint for the status page: resident memory, and CPU time as a
// percentage of one core over the interval since the previous sample. process.cpuUsage()
// counts every thread (the data-plane workers included), so a busy appliance passes 100%.
import type { ProcessSample } from "./status-history.ts";

export class ProcessSampler {
  #cpu = process.cpuUsage();
  #atMs: number;

  constructor(nowMs: number) {
    this.#atMs = nowMs;
  }

  sample(nowMs: number): ProcessSample {
    const cpu = process.cpuUsage();
    const usedMicros = cpu.user - this.#cpu.user + (cpu.system - this.#cpu.system);
    this.#cpu = cpu;
    const elapsedMicros = (nowMs - this.#atMs) * 1000;
    this.#atMs = nowMs;
    const cpuPercent = elapsedMicros > 0 ? Math.max(0, (usedMicros / elapsedMicros) * 100) : 0;
    return { rssBytes: process.memoryUsage.rss(), cpuPercent };
  }
}
