// A tiny Multiboot (v1) kernel for vmm's tests (tests/vmm/BUILD builds it as an ELF32 at 1 MiB).
// It checks what the Multiboot specification promises at entry: EAX = 0x2BADB002, protected mode
// without paging, an information structure (EBX) with memory bounds, a command line, a memory map
// holding RAM at 1 MiB, and the boot loader's name; prints "multiboot: ok", its command line and
// its module (if any) on COM1; then writes 0x21 to the debug-exit port 0xf4 (vmm --debug_exit
// ends with status 67) and, should that port be absent, powers off through vmm's ACPI sleep
// register (status 0). A failed check writes its number (2-6) instead, after "multiboot: FAIL".
        .code32
        .text
        .globl _start
        .align 4
header:
        .long 0x1badb002                // magic
        .long 0x00000003                // flags: page-aligned modules, memory information
        .long -(0x1badb002 + 0x00000003)

_start:
        mov     $stack_top, %esp
        cmp     $0x2badb002, %eax
        mov     $2, %eax
        jne     fail
        mov     %ebx, %esi              // The information structure.
        mov     %cr0, %eax
        test    $0x80000000, %eax       // PG clear,
        mov     $3, %eax
        jnz     fail
        mov     %cr0, %eax
        test    $1, %eax                // PE set.
        mov     $3, %eax
        jz      fail
        mov     (%esi), %eax            // flags: memory, cmdline, mmap, loader name.
        and     $0x245, %eax
        cmp     $0x245, %eax
        mov     $4, %eax
        jne     fail
        cmpl    $60000, 8(%esi)         // mem_upper (KiB): the test gives 64 MiB.
        mov     $6, %eax
        jb      fail
        mov     48(%esi), %edi          // mmap_addr
        mov     44(%esi), %ecx          // mmap_length
        add     %edi, %ecx
1:      cmp     %ecx, %edi
        mov     $5, %eax
        jae     fail
        cmpl    $1, 20(%edi)            // type: available
        jne     2f
        cmpl    $0, 8(%edi)             // base, high half
        jne     2f
        cmpl    $0x100000, 4(%edi)      // base, low half
        je      3f
2:      add     (%edi), %edi            // size, which does not count itself
        add     $4, %edi
        jmp     1b
3:      mov     $ok, %edi
        call    puts
        mov     16(%esi), %edi          // cmdline
        call    puts
        mov     $newline, %edi
        call    puts
        cmpl    $1, 20(%esi)            // mods_count
        jne     4f
        mov     24(%esi), %ebx          // mods_addr
        mov     (%ebx), %edi            // mod_start
        mov     4(%ebx), %ecx           // mod_end
        call    putn
4:      mov     $0x21, %eax
        jmp     exit

fail:   push    %eax
        mov     $failed, %edi
        call    puts
        pop     %eax
exit:   mov     $0xf4, %dx
        out     %eax, %dx               // A dword, as unit-test kernels write it.
        mov     $0x3b0, %dx             // ACPI sleep control: S5 | SLP_EN.
        mov     $0x34, %al
        out     %al, %dx
5:      hlt
        jmp     5b

// Prints the NUL-terminated string at EDI on COM1.
puts:   mov     $0x3f8, %dx
6:      movb    (%edi), %al
        test    %al, %al
        jz      7f
        out     %al, %dx
        inc     %edi
        jmp     6b
7:      ret

// Prints the bytes [EDI, ECX) on COM1.
putn:   mov     $0x3f8, %dx
8:      cmp     %ecx, %edi
        jae     9f
        movb    (%edi), %al
        out     %al, %dx
        inc     %edi
        jmp     8b
9:      ret

ok:     .asciz  "multiboot: ok, command line: "
failed: .asciz  "multiboot: FAIL\n"
newline: .asciz "\n"

        .bss
        .align 16
        .space 4096
stack_top:
