/** What the NBD server serves: one export, implemented by a pair's data path. */
export interface NbdExport {
  readonly name: string;
  readonly description: string;
  readonly size: number;
  readonly readOnly: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Writes the concatenation of `chunks` (`length` bytes); resolves when written, with
   * `fua` when durable. The chunks are the received socket buffers, not copied.
   */
  write(offset: number, chunks: Buffer[], length: number, fua: boolean): Promise<void>;
  /** `noHole` (NBD_CMD_FLAG_NO_HOLE): the range must stay allocated, not be punched out. */
  writeZeroes(offset: number, length: number, fua: boolean, noHole?: boolean): Promise<void>;
  /** Advisory: the contents of the range become unspecified. */
  trim(offset: number, length: number, fua: boolean): Promise<void>;
  /** Resolves when every write completed before the call is durable. */
  flush(): Promise<void>;
}
