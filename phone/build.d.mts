// Types of phone/build.mjs for the TypeScript that imports it (the tests, the size measurement).
export declare const PHONE_TARGETS: string[];
export declare function buildPhone(options?: {
  outDir?: string;
  minify?: boolean;
}): Promise<{ outDir: string; sizes: Record<string, number> }>;
