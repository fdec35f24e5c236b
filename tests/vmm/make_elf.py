#!/usr/bin/env python3
"""Writes a minimal x86-64 ELF "kernel" for vmm's native tests: one PT_LOAD segment at 16 MiB
holding CODE (hex bytes), entered in 64-bit mode. Usage: make_elf.py OUT HEXCODE"""
import struct
import sys

out, code = sys.argv[1], bytes.fromhex(sys.argv[2])
paddr = 0x1000000
ehdr_size, phdr_size = 64, 56
ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, paddr, ehdr_size, 0, 0, ehdr_size,
                           phdr_size, 1, 0, 0, 0)
offset = ehdr_size + phdr_size
phdr = struct.pack("<IIQQQQQQ", 1, 5, offset, 0xffffffff80000000 + paddr, paddr, len(code),
                   len(code), 0x1000)
with open(out, "wb") as fh:
    fh.write(ehdr + phdr + code)
