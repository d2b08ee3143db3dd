export function rng(seed: number): () => number;
export const TEST_KEY: string;
export function upgradeRequest(path?: string, extra?: Record<string, string>): string;
