/**
 * Bounded waits for shutdown and start-up steps: whether a promise settled
 * (either way) within `ms`. Used where a library call can hang for good
 * (a Redis command while Redis is down, BullMQ's close after a reconnect)
 * and the caller must move on and clean up by other means.
 */
export async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  return settled;
}
