/**
 * Admission on one executor: a job starts only while the memory its container may use fits the host's budget
 * and its tenant runs fewer than its cap of jobs here. Others wait in arrival order (first come, first served
 * among those that fit), so one tenant's burst cannot take every slot, and sixteen 8 GiB jobs are never
 * promised a host that has 16 GiB. A waiting job keeps heartbeating; a cancel ends its wait.
 */
export interface AdmissionLimits {
  /** Memory all running containers may hold together (their limits, summed). */
  memoryBudgetMb: number;
  /** Jobs one tenant may run at once on this executor. */
  maxJobsPerTenant: number;
}

export interface AdmissionRequest {
  tenantId: string;
  memoryMb: number;
}

interface Waiter extends AdmissionRequest {
  grant: () => void;
}

export class AdmissionRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdmissionRefused';
  }
}

export class Admission {
  private usedMb = 0;
  private readonly perTenant = new Map<string, number>();
  private readonly queue: Waiter[] = [];

  constructor(readonly limits: AdmissionLimits) {}

  /** Running now: memory held and jobs per tenant (diagnostics and tests). */
  snapshot(): { usedMb: number; waiting: number; perTenant: Record<string, number> } {
    return { usedMb: this.usedMb, waiting: this.queue.length, perTenant: Object.fromEntries(this.perTenant) };
  }

  /**
   * Waits until the job fits, then holds its share until `release()` is called. A job larger than the whole
   * budget is refused at once (it could never start here). `onWait` is called while waiting (heartbeats).
   */
  async acquire(
    req: AdmissionRequest,
    opts: { signal?: AbortSignal; onWait?: () => void; waitTickMs?: number } = {},
  ): Promise<() => void> {
    if (req.memoryMb > this.limits.memoryBudgetMb) {
      throw new AdmissionRefused(
        `the job's memory limit (${req.memoryMb} MB) is over this executor's budget (${this.limits.memoryBudgetMb} MB)`,
      );
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.usedMb -= req.memoryMb;
      const n = (this.perTenant.get(req.tenantId) ?? 1) - 1;
      if (n <= 0) this.perTenant.delete(req.tenantId);
      else this.perTenant.set(req.tenantId, n);
      this.drain();
    };
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { ...req, grant: () => resolve() };
      const tick = opts.onWait ? setInterval(opts.onWait, opts.waitTickMs ?? 1000) : undefined;
      const done = () => {
        clearInterval(tick);
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        done();
        reject(new AdmissionRefused('cancelled while waiting for admission'));
        this.drain();
      };
      waiter.grant = () => {
        done();
        resolve();
      };
      if (opts.signal?.aborted) {
        reject(new AdmissionRefused('cancelled while waiting for admission'));
        done();
        return;
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.drain();
    });
    return release;
  }

  private fits(req: AdmissionRequest): boolean {
    return (
      this.usedMb + req.memoryMb <= this.limits.memoryBudgetMb &&
      (this.perTenant.get(req.tenantId) ?? 0) < this.limits.maxJobsPerTenant
    );
  }

  private take(req: AdmissionRequest): void {
    this.usedMb += req.memoryMb;
    this.perTenant.set(req.tenantId, (this.perTenant.get(req.tenantId) ?? 0) + 1);
  }

  /** Starts every waiter that now fits, oldest first; one that does not fit does not block others behind it. */
  private drain(): void {
    for (let i = 0; i < this.queue.length;) {
      const w = this.queue[i]!;
      if (this.fits(w)) {
        this.queue.splice(i, 1);
        this.take(w);
        w.grant();
      } else i++;
    }
  }
}

/** The tenant a code package belongs to: packages live at `functions/<tenant>/...`. */
export function tenantOfPackage(packageKey: string): string {
  const m = /^functions\/([^/]+)\//.exec(packageKey);
  return m ? m[1]! : 'unknown';
}
