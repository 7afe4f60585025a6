/** The closing line of `npm test` ("N passed, N failed") must not hide a test file that crashed while loading. */
import { closingLine } from '../../scripts/test';

const results = (r: Record<string, number>) => JSON.stringify({ numPassedTests: 0, numFailedTests: 0, ...r });

describe('npm test closing line', () => {
  it('counts passed and failed tests', () => {
    expect(closingLine(results({ numPassedTests: 12, numFailedTests: 2 }), 1)).toBe('12 passed, 2 failed');
    expect(closingLine(results({ numPassedTests: 12 }), 0)).toBe('12 passed, 0 failed');
  });

  it('a test file that crashed while loading is a failure', () => {
    expect(closingLine(results({ numPassedTests: 12, numRuntimeErrorTestSuites: 1 }), 1)).toBe('12 passed, 1 failed');
  });

  it('a failed run with no results, or none counted as failed, is never "0 failed"', () => {
    expect(closingLine(undefined, 1)).toBe('0 passed, 1 failed');
    expect(closingLine(results({ numPassedTests: 3 }), 1)).toBe('3 passed, 1 failed');
  });
});
