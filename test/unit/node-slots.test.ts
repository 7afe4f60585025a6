import { NodeSlots } from '../../lib/llm/node-slots';

describe('NodeSlots', () => {
  it('grants at most `parallelism` at once, first come first served', async () => {
    const slots = new NodeSlots(2);
    const a = await slots.acquire();
    const b = await slots.acquire();
    const order: string[] = [];
    const c = slots.acquire().then((r) => (order.push('c'), r));
    const d = slots.acquire().then((r) => (order.push('d'), r));
    await Promise.resolve();
    expect(slots.stats()).toMatchObject({ generating: 2, waiting: 2 });
    a();
    a(); // a second call gives nothing back twice
    const releaseC = await c;
    expect(slots.stats()).toMatchObject({ generating: 2, waiting: 1 });
    b();
    releaseC();
    (await d)();
    expect(order).toEqual(['c', 'd']);
    expect(slots.stats()).toEqual({ parallelism: 2, generating: 0, waiting: 0, maxGenerations: 2 });
  });

  it('lets a waiter stop waiting when its signal aborts, without taking a slot', async () => {
    const slots = new NodeSlots(1);
    const held = await slots.acquire();
    const controller = new AbortController();
    const waiting = slots.acquire(controller.signal);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(slots.stats()).toMatchObject({ generating: 1, waiting: 0 });
    held();
    const next = await slots.acquire();
    expect(slots.stats()).toMatchObject({ generating: 1, waiting: 0 });
    next();
  });

  it('refuses a parallelism below one', () => {
    expect(() => new NodeSlots(0)).toThrow(/parallelism/);
  });
});
