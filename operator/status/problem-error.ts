import type { Problem } from './pair-status.js';

/** A pass stopped by a problem the status reports (the reconciler decides whether to retry). */
export class ProblemError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.message);
    this.name = 'ProblemError';
    this.problem = problem;
  }
}
