import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'kiosk/dist/', 'phone/dist/', 'proto/gen/', 'var/', 'coverage/', 'loadtest/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: {
        // The project service finds the nearest tsconfig.json of each file: tsconfig.json for switch/, test/,
        // scripts/, loadtest/bench/ and loadtest/shared/; loadtest/k6/tsconfig.json for the k6 scripts.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      // Prettier (.prettierrc.json, `npm run format:check` in CI) lays the code out at 140 columns; what it
      // cannot break is a long string, template or URL: those may run past, comments and code may not.
      'max-len': ['error', { code: 140, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true }],
    },
  },
  {
    // Plain JavaScript (bin/, scripts/*.mjs, this file) is in no tsconfig: lint it without type information.
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
